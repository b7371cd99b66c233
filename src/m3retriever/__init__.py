"""m3retriever: hybrid retrieval for RAG."""
from m3retriever.hookspecs import hookimpl

__all__ = ["hookimpl"]
__version__ = "0.1.0"
