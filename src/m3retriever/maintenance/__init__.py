"""Operations on a stored collection: copy it (to another store), snapshot and restore it,
recount its BM25 lengths, add a dense branch. Each builds on the collection layer of the store (names, the atomic
replace) and is run by ``m3retriever collection ...``."""
