// @ts-check
// Starts Swagger UI on /docs (a file, since the service's Content-Security-Policy allows no inline script).
"use strict";

/**
 * What this page uses of swagger-ui-bundle.js, which loads before it and sets `window.SwaggerUIBundle`.
 * @typedef {{
 *   (options: Record<string, unknown>): unknown,
 *   presets: { apis: unknown },
 *   SwaggerUIStandalonePreset: unknown,
 * }} SwaggerUIBundle
 */

(() => {
  const page = /** @type {Window & { SwaggerUIBundle?: SwaggerUIBundle, ui?: unknown }} */ (window);
  const root = document.getElementById("swagger-ui");
  const bundle = page.SwaggerUIBundle;
  if (!root || !bundle) throw new Error("the docs page lacks #swagger-ui or swagger-ui-bundle.js");
  page.ui = bundle({
    url: root.dataset.openapi,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // no badge from an outside validator
    presets: [bundle.presets.apis, bundle.SwaggerUIStandalonePreset],
  });
})();
