"""Labelled queries and how a ranking scores against them: the pieces evaluation and
fine-tuning share.

``data`` reads queries and relevance judgements (a BEIR folder's ``queries.jsonl`` and
``qrels/<split>.tsv``, or a JSONL of ``{"query": ..., "relevant": [doc ids]}``); ``metrics``
scores rankings against them through ``ranx`` (imported when first used).
"""
