"""Every document the code and docs cite lives in the repository (a reader has nothing else)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITED = re.compile(r"docs/[\w./-]+\.md")


def _sources():
    for pattern in (
        "*.md",
        "docs/*.md",
        "mmvideo/**/*.py",
        "magicmask/**/*.py",
        "train/**/*.py",
        "bench/*.py",
    ):
        yield from ROOT.glob(pattern)


def test_every_cited_doc_exists_in_the_repository():
    missing = sorted(
        {
            f"{path.relative_to(ROOT)} -> {ref}"
            for path in _sources()
            for ref in CITED.findall(path.read_text(encoding="utf-8"))
            if "shared/docs" not in ref and not (ROOT / ref).is_file()
        }
    )
    assert not missing


def test_spec_references_resolve_to_a_section_of_the_spec():
    spec = (ROOT / "docs" / "magicmask-spec.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)*)\.? ", spec, flags=re.M))
    cited = {
        ref
        for path in _sources()
        for ref in re.findall(r"spec §(\d+(?:\.\d+)*)", path.read_text(encoding="utf-8"))
    }
    assert cited and cited <= sections, cited - sections


def test_nothing_points_outside_the_repository_for_documentation():
    offenders = [
        str(p.relative_to(ROOT))
        for p in _sources()
        if "../shared/docs" in p.read_text(encoding="utf-8")
    ]
    assert not offenders
