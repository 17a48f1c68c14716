"""Named studies for ``datasets.build --study`` and drug-name resolution for ``--drugs``.

Drug names resolve to an L1000 ``pert_iname`` present as ``trt_cp`` in the data, in this order (the first rule
that finds something wins; two different ``pert_iname`` values for one name is an error):

1. the ``pert_iname`` itself; 2. the same name ignoring case and punctuation (``sn38`` = ``SN-38``);
3. pert_info: a ``pert_id`` (``BRD-K81418486``) or an alternative name in an alias column of the pert_info
   table (:data:`ALIAS_COLUMNS`, values split on ``|``/``;``), case- and punctuation-insensitive;
4. the documented synonym table :data:`SYNONYMS` (the paper's names and their common code names).

A name no rule resolves is passed on unchanged, so the selection's own error (closest names) reports it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets.baseline import normalize_name
from datasets.cube import CubeError
from datasets.fetch import CATALOG, Resource
from datasets.text_tables import read_text_table

ALIAS_COLUMNS = ("compound_aliases", "pert_iname_alt", "alt_name", "alternative_names", "synonyms")

# Paper name (Table 1) -> cell lines in the paper's Table 1, other names (code names, brand names).
RAMPASEK2017_DRUGS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("olaparib", 56, ("AZD2281", "KU-0059436")),
    ("selumetinib", 56, ("AZD6244", "ARRY-142886")),
    ("vorinostat", 56, ("SAHA", "suberoylanilide hydroxamic acid")),
    ("bortezomib", 51, ("PS-341", "Velcade")),
    ("navitoclax", 51, ("ABT-263",)),
    ("SN-38", 51, ("7-ethyl-10-hydroxycamptothecin",)),
    ("temsirolimus", 51, ("CCI-779",)),
    ("tipifarnib", 51, ("R115777",)),
    ("GDC-0941", 19, ("pictilisib",)),
    ("gefitinib", 19, ("ZD1839", "Iressa")),
    ("NU-7441", 19, ("KU-57788",)),
    ("saracatinib", 19, ("AZD0530",)),
    ("vinorelbine", 14, ("Navelbine",)),
    ("docetaxel", 13, ("Taxotere",)),
    ("paclitaxel", 13, ("Taxol",)),
    ("afatinib", 12, ("BIBW2992",)),
    ("etoposide", 12, ("VP-16",)),
    ("doxorubicin", 8, ("adriamycin",)),
    ("linsitinib", 6, ("OSI-906",)),
)
SYNONYMS: dict[str, tuple[str, ...]] = {d: s for d, _, s in RAMPASEK2017_DRUGS}


class StudyError(CubeError):
    """A study's inputs are missing or a drug name is ambiguous; the message says what to fetch or pass."""


@dataclass(frozen=True)
class Study:
    name: str
    citation: str
    drugs: tuple[str, ...]
    paper_cell_lines: dict[str, int]
    time_h: float
    paper_genes: int
    notes: str


STUDIES: dict[str, Study] = {
    "rampasek2017": Study(
        name="rampasek2017",
        citation="Rampasek et al., Modeling Post-treatment Gene Expression Change with a Deep Generative "
                 "Model",
        drugs=tuple(d for d, _, _ in RAMPASEK2017_DRUGS),
        paper_cell_lines={d: n for d, n, _ in RAMPASEK2017_DRUGS},
        time_h=24.0, paper_genes=903,
        notes="highest concentration per drug and cell line, all replicates; 24 h (the paper gives no time "
              "point; --time overrides); GDSC+CCLE union (else DepMap) as singletons; genes: L1000 landmarks "
              "found in every baseline source"),
}


# -------------------------------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class DrugMatch:
    requested: str
    pert_iname: str  # the name found (a response file's drug name when ``target`` says so)
    via: str  # how it was found
    target: str = "pert_iname"  # what kind of name was looked for

    def render(self) -> str:
        return f"drug {self.requested!r} -> {self.target} {self.pert_iname!r} ({self.via})"


def _split_aliases(v: object) -> list[str]:
    if v is None or (isinstance(v, float) and v != v):
        return []
    return [s.strip() for s in re.split(r"[|;]", str(v)) if s.strip()]


def pert_info_names(path: str | Path | None) -> dict[str, tuple[set[str], str]]:
    """{normalized pert_id or alias: ({pert_iname, ...}, column)} from a pert_info table (TSV)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: pert_info file not found")
    try:
        df = read_text_table(path, "pert_info", sep="\t", dtype=str, keep_default_na=False)
    except CubeError as e:  # not UTF-8 nor Latin-1 text (datasets.text_tables)
        raise StudyError(str(e)) from None
    except ValueError as e:
        raise StudyError(f"{path}: cannot read pert_info as a tab-separated table ({e})") from e
    name_col = next((c for c in ("pert_iname", "cmap_name") if c in df.columns), None)
    if name_col is None:
        raise StudyError(f"{path}: pert_info needs a 'pert_iname' column (columns: {list(df.columns[:6])})")
    out: dict[str, tuple[set[str], str]] = {}
    cols = [c for c in ("pert_id", *ALIAS_COLUMNS) if c in df.columns]
    for c in cols:
        for alias_cell, iname in zip(df[c], df[name_col], strict=True):
            for a in _split_aliases(alias_cell):
                key = normalize_name(a)
                if key and iname.strip():
                    out.setdefault(key, (set(), c))[0].add(iname.strip())
    return out


def split_drug_values(values: Sequence[str], names: Sequence[str]) -> list[str]:
    """Drug names given on a command line: a value that is one of ``names`` as it is (LINCS names hold commas:
    '2,3-DCPE'), each other value split at its commas (``a,b``), stripped."""
    known = set(names)
    return [n for v in values
            for n in ([v] if v in known else [s.strip() for s in v.split(",") if s.strip()])]


def resolve_drugs(requested: Sequence[str], inames: Sequence[str], pert_info: str | Path | None = None,
                  synonyms: dict[str, tuple[str, ...]] | None = None, target: str = "pert_iname",
                  ambiguous_hint: str = "give one of them") -> list[DrugMatch]:
    """Resolve each requested name to a ``pert_iname`` among ``inames`` (see the module docstring).

    ``target`` names what ``inames`` are in the matches and messages, ``ambiguous_hint`` what to do about a
    name that finds two: the same rules resolve the cube's drugs among a response file's drug names
    (datasets.response) with ``target="GDSC drug name"``."""
    synonyms = SYNONYMS if synonyms is None else synonyms
    present = set(inames)
    by_norm: dict[str, set[str]] = {}
    for n in present:
        by_norm.setdefault(normalize_name(n), set()).add(n)
    info = pert_info_names(pert_info)
    groups = [{normalize_name(k), *(normalize_name(s) for s in v)} for k, v in synonyms.items()]
    out: list[DrugMatch] = []
    for r in requested:
        key = normalize_name(r)
        rules: list[tuple[str, set[str]]] = [
            (target, {r} & present),
            (f"{target}, ignoring case and punctuation", by_norm.get(key, set())),
            (f"pert_info {info[key][1]}" if key in info else "pert_info",
             {n for x in info.get(key, (set(), ""))[0] for n in by_norm.get(normalize_name(x), set())}),
            ("synonym table", {n for g in groups if key in g for k in g for n in by_norm.get(k, set())}),
        ]
        for via, found in rules:
            if len(found) > 1:
                raise StudyError(f"drug {r!r} is ambiguous ({via}): it names {target} "
                                 f"{', '.join(sorted(found))}; {ambiguous_hint}")
            if found:
                out.append(DrugMatch(r, found.pop(), via, target))
                break
        else:
            out.append(DrugMatch(r, r, "not resolved", target))
    seen: dict[str, str] = {}
    for m in out:
        if m.pert_iname in seen and seen[m.pert_iname] != m.requested:
            raise StudyError(f"drugs {seen[m.pert_iname]!r} and {m.requested!r} both name {target} "
                             f"{m.pert_iname!r}; give it once")
        seen[m.pert_iname] = m.requested
    return out


# --------------------------------------------------------------------------------------------- discovery
@dataclass
class StudyInputs:
    l1000: Path
    inst_info: Path
    gene_info: Path
    pert_info: Path | None
    baseline: list[Path]
    model: Path | None  # DepMap Model.csv (cell-line names for COSMIC and ACH- ids)
    series: str
    notes: list[str] = field(default_factory=list)


def _file(d: Path, res: Resource, role: str) -> Path | None:
    for f in res.files:
        if f.role == role:
            p = d / f.unpacked_name
            return p if p.is_file() else None
    return None


def find_inputs(d: str | Path, cell_map_given: bool = False) -> StudyInputs:
    """The study's files in ``d`` under their published names (as ``datasets.fetch`` leaves them)."""
    d = Path(d)
    if not d.is_dir():
        raise StudyError(f"--dir {d}: not a directory; fetch the data first: pertvae-bench fetch "
                         f"lincs-gse92742 depmap --dir {d}")
    notes: list[str] = []
    series = None
    for rname in ("lincs-gse92742", "lincs-gse70138"):
        if _file(d, CATALOG[rname], "l1000"):
            series = rname
            break
    if series is None:
        names = " or ".join(CATALOG[r].files[0].unpacked_name for r in ("lincs-gse92742", "lincs-gse70138"))
        raise StudyError(f"{d}: no L1000 Level 3 matrix ({names}); run: pertvae-bench fetch lincs-gse92742 "
                         f"--dir {d}")
    res = CATALOG[series]
    missing = [f.unpacked_name for f in res.files if f.role in ("inst_info", "gene_info") and
               not (d / f.unpacked_name).is_file()]
    if missing:
        raise StudyError(f"{d}: {', '.join(missing)} missing (the metadata of {series}); run: pertvae-bench "
                         f"fetch {series} --dir {d}")
    gdsc, ccle = _file(d, CATALOG["gdsc"], "baseline"), _file(d, CATALOG["ccle"], "baseline")
    depmap, model = _file(d, CATALOG["depmap"], "baseline"), _file(d, CATALOG["depmap"], "model")
    baseline = [p for p in (gdsc, ccle) if p]
    if baseline:
        notes.append("baseline: " + " + ".join(p.name for p in baseline) + " (the paper's GDSC+CCLE union)"
                     + ("" if depmap is None else f"; {depmap.name} not used"))
    elif depmap:
        baseline = [depmap]
        notes.append(f"baseline: {depmap.name} (DepMap; the paper used GDSC+CCLE)")
    else:
        raise StudyError(f"{d}: no baseline expression (GDSC, CCLE or DepMap); run: pertvae-bench fetch "
                         f"depmap --dir {d} (or gdsc ccle)")
    if (gdsc or depmap in baseline) and model is None and not cell_map_given:
        raise StudyError(f"{d}: Model.csv missing: it maps GDSC's COSMIC ids and DepMap's ACH- ids to cell "
                         f"line names; run: pertvae-bench fetch depmap --dir {d} (or pass --cell-map)")
    if series != "lincs-gse92742":
        notes.append(f"L1000: {series} (the paper's era used GSE92742)")
    return StudyInputs(l1000=_file(d, res, "l1000"), inst_info=_file(d, res, "inst_info"),
                       gene_info=_file(d, res, "gene_info"), pert_info=_file(d, res, "pert_info"),
                       baseline=baseline, model=model, series=series, notes=notes)


def model_cell_names(path: str | Path) -> dict[str, str]:
    """DepMap Model.csv -> {normalized ModelID / COSMICID / CCLEName: StrippedCellLineName} (ids that name
    two cell lines left out: :func:`model_cell_map`)."""
    return model_cell_map(path)[0]


def model_cell_map(path: str | Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """DepMap Model.csv -> ({normalized ModelID / COSMICID / CCLEName: StrippedCellLineName}, {id: its names}
    for the ids that name two or more cell lines: those are left out of the map, never one of them taken
    unsaid; the build says so, and --cell-map can settle them)."""
    path = Path(path)
    try:
        df = read_text_table(path, "DepMap Model.csv", dtype=str, keep_default_na=False)
    except CubeError as e:  # not UTF-8 nor Latin-1 text (datasets.text_tables)
        raise StudyError(str(e)) from None
    except ValueError as e:
        raise StudyError(f"{path}: cannot read DepMap Model.csv ({e})") from e
    name_col = next((c for c in ("StrippedCellLineName", "CellLineName") if c in df.columns), None)
    if name_col is None or "ModelID" not in df.columns:
        raise StudyError(f"{path}: Model.csv needs columns ModelID and StrippedCellLineName "
                         f"(found {list(df.columns[:6])})")
    out: dict[str, str] = {}
    ambiguous: dict[str, list[str]] = {}
    for col in ("CCLEName", "COSMICID", "ModelID"):  # later columns win on a clash between columns
        if col not in df.columns:
            continue
        names: dict[str, dict[str, str]] = {}  # key -> {name: the id as written}
        for k, v in zip(df[col], df[name_col], strict=True):
            k = k.strip().removesuffix(".0") if col == "COSMICID" else k.strip()
            if k and v.strip():
                names.setdefault(normalize_name(k), {})[v.strip()] = k
        for key, vs in names.items():
            if len(vs) == 1:
                out[key] = next(iter(vs))
            else:
                ambiguous[next(iter(vs.values()))] = sorted(vs)
                out.pop(key, None)
    return out, ambiguous


# ----------------------------------------------------------------------------------------------- summary
def study_table(study: Study, matches: Sequence[DrugMatch], cells: dict[str, int], replicates: dict[str, int],
                doses: dict[str, list[float]], time_h: float, genes_kept: int) -> str:
    """The summary table (drug, LINCS name, cell lines, the paper's count, replicates, dose, time) and the
    mismatches with the paper's Table 1 and gene count."""
    rows = [("drug", "LINCS name", "cell lines", "paper", "replicates", "dose uM", "time h")]
    lincs = {m.requested: m.pert_iname for m in matches}
    mism = []
    for d in study.drugs:
        dz = sorted(set(doses.get(d, [])))
        dose = (f"{dz[0]:g}" if len(dz) == 1 else f"{dz[0]:g}-{dz[-1]:g}") if dz else "-"
        n, p = cells.get(d, 0), study.paper_cell_lines[d]
        rows.append((d, lincs.get(d, "-"), str(n), str(p), str(replicates.get(d, 0)), dose, f"{time_h:g}"))
        if n != p:
            mism.append(f"{d} {n} vs {p}")
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(r)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    lines.append(f"cell-line counts differing from the paper's Table 1: {len(mism)} of {len(study.drugs)} "
                 "drugs" + (f" ({'; '.join(mism)})" if mism else ""))
    lines.append(f"genes kept: {genes_kept} (the paper kept {study.paper_genes})"
                 + ("" if genes_kept == study.paper_genes else " - differs from the paper"))
    return "\n".join(lines)
