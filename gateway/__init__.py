"""The gateway: llama.v1.GatewayService, text and chat completion through the tokenizer and model services."""
