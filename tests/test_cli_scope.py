"""The command line's tenant and diversity options: ``--tenant``/``--tenant-field`` on the
collection commands, ``search --max-per-doc/--mmr/--diversity-depth``."""

from __future__ import annotations

import json

from m3retriever.cli import main


def _jsonl(path, tenant_docs):
    path.write_text("".join(json.dumps({"doc_id": d, "text": t}) + "\n" for d, t in tenant_docs))
    return path


def test_tenant_and_diversity_options(config_file, tmp_path, capsys):
    common = ["--config", str(config_file), "--tenant-field", "tenant"]
    acme = _jsonl(tmp_path / "acme.jsonl", [("1", "Kiwi and mango orchard notes."), ("2", "Papaya harvest.")])
    globex = _jsonl(tmp_path / "globex.jsonl", [("1", "Kiwi market prices."), ("3", "Granite quarry.")])
    assert main(["ingest", str(acme), *common, "--tenant", "acme", "--quiet"]) == 0
    assert main(["ingest", str(globex), *common, "--tenant", "globex", "--quiet"]) == 0
    assert "collection 'cli': 2 chunks" in capsys.readouterr().out  # the tenant's own count

    args = ["search", "kiwi", *common, "--tenant", "acme", "--json", "-k", "5"]
    assert main([*args, "--filter", '{"tenant": "globex"}']) == 0
    assert json.loads(capsys.readouterr().out)["hits"] == []
    assert main([*args, "--max-per-doc", "1", "--mmr", "0.3", "--diversity-depth", "8"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert {h["metadata"]["tenant"] for h in hits} == {"acme"} and len(hits) == 2
    assert all(h["scores"]["relevance_rank"] >= 1 for h in hits)

    assert main(["collection", "info", *common, "--tenant", "globex", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tenant"] == "globex" and info["documents"] == 2

    assert main([*args, "--mmr", "2"]) == 2
    assert "search.mmr must be between 0 and 1" in capsys.readouterr().err
    assert main(["search", "kiwi", "--config", str(config_file), "--tenant", "acme"]) == 2
    assert "needs tenant_field" in capsys.readouterr().err
