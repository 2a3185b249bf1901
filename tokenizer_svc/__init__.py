"""The tokenizer service: Llama-2 prompts and chat dialogs to token ids and back, behind llama.v1.TokenizerService."""
