"""HTTP routes, one router per resource: thin, every decision lives in the engine, the messages and
the stream; what they share is in :mod:`.deps` (typed dependencies) and :mod:`.error_responses` (error
answers)."""
