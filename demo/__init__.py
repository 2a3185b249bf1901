"""The embedded demo model: a tokenizer and a small Llama trained here on a corpus made here."""
