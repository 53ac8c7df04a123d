"""LLM access: the OpenRouter-format client, the offline simulator, token counting and prompts."""
