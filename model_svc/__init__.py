"""The model service: a torchrun group that runs Llama-2 behind llama.v1.ModelService."""
