// @ts-check
// One key per decision: what each key press does, and the class keys of a project.

/**
 * A key press, and where it happened.
 * @typedef {object} Press
 * @property {string} key
 * @property {boolean} [ctrlKey]
 * @property {boolean} [altKey]
 * @property {boolean} [metaKey]
 * @property {boolean} [shiftKey]
 * @property {boolean} [inField] typed into an input, textarea or select
 * @property {boolean} [onButton] a focused button, which keeps its own Enter and Space
 */
/** @typedef {{do: "undo" | "accept" | "reject" | "skip"} | {do: "label", label: string}} Action */

/**
 * What a key press does, or null: nothing (the browser's own).
 * @param {Press} press
 * @param {Map<string, string>} keys key -> class
 * @returns {Action | null}
 */
export function keyAction({key, ctrlKey, altKey, metaKey, shiftKey, inField, onButton}, keys) {
  if (inField || altKey || metaKey) return null;
  if (key === "Backspace" || (ctrlKey && key.toLowerCase() === "z")) return {do: "undo"};
  if (ctrlKey || ((key === "Enter" || key === " ") && onButton)) return null;
  if (key === "Enter") return {do: shiftKey ? "reject" : "accept"};
  if (key === " ") return {do: "skip"};
  const label = keys.get(key);
  return label === undefined ? null : {do: "label", label};
}

/**
 * Key -> class, from the project's class -> key (a class may have none).
 * @param {{classes: string[], keys: Record<string, string | undefined>}} project
 */
export function classKeys({classes, keys}) {
  /** @type {Map<string, string>} */
  const found = new Map();
  for (const label of classes) {
    const key = keys[label];
    if (key !== undefined) found.set(key, label);
  }
  return found;
}

/**
 * The label that accepting (Enter) or rejecting (Shift+Enter: two classes only) the model's guess gives.
 * @param {{predicted: string | null} | undefined} item
 * @param {string[]} classes
 * @param {boolean} reject
 * @returns {string | undefined} undefined: no guess, or no single other class
 */
export function guessLabel(item, classes, reject) {
  if (!item || item.predicted === null) return undefined;
  if (!reject) return item.predicted;
  return classes.length === 2 ? classes.find((c) => c !== item.predicted) : undefined;
}
