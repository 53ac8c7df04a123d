"""LLM access: the OpenRouter-format client, its errors, token counting and the secret scrubber; a leaf that
imports nothing else of the product (the simulator is `core.sim`, prompts are `core.messages.prompts`)."""
