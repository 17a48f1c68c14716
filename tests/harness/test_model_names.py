"""Each grid model's name is spelled in its own contender module (harness/contenders/) and the presets only.

The check, precisely: parse every ``.py`` file under harness/ and pertvae_core/ except harness/contenders/
and harness/presets/, and look at every string literal (docstrings and f-string text excluded) whose whole
value is a built-in model's name:

- ``"vae"`` and ``"baselines"`` name nothing but a model: every such literal is a finding.
- ``"pca"`` is also a feature set of the drug-response classifiers (PCA(x1) in pertvae_core/response_*.py):
  a finding everywhere else.
- ``"pertvae"`` is also the name of PertVAE's prediction as a *method* (pertvae_core.methods.REFERENCE, the
  score keys of pertvae_core.api, the report's labels), so it is a finding only where it stands for a model:
  compared (``==``, ``!=``, ``in``) with an expression that mentions "model", the value of a ``model=`` or
  ``models=`` keyword, an argument of a call or a subscript on something that mentions "model", a key or
  element of a collection beside another model's name, or of a collection assigned to a name that mentions
  "model". (A "pertvae" passed to a function whose name does not say model is not caught.)

Module names (``harness.contenders.pertvae``) and method names (``"pertvae_rec"``, ``"pca_latent_linear"``)
are other strings and never match. ``test_the_check_finds_what_it_should`` runs the check on snippets, so a
check that finds nothing cannot pass unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from harness.contenders import BUILT_IN

ROOT = Path(__file__).resolve().parents[2]
SKIP = ("harness/contenders/", "harness/presets/")
FEATURE_SETS = {"pca": "pertvae_core/response_"}   # the classifiers' feature set of the same name
SHARED = {"pertvae"}                                 # also a method's name: counts in a model context only


def _mentions_model(node: ast.AST) -> bool:
    return "model" in ast.unparse(node).lower()


def _model_context(node: ast.Constant, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether the literal ``node`` stands for a model (the module docstring's rules for "pertvae")."""
    parent = parents.get(node)
    if isinstance(parent, ast.Compare):
        return any(_mentions_model(x) for x in [parent.left, *parent.comparators] if x is not node)
    if isinstance(parent, ast.keyword):
        return parent.arg in ("model", "models")
    if isinstance(parent, ast.Call):
        return _mentions_model(parent.func)
    if isinstance(parent, ast.Subscript):
        return _mentions_model(parent.value)
    if isinstance(parent, ast.Dict | ast.Set | ast.Tuple | ast.List):
        items = parent.keys if isinstance(parent, ast.Dict) else parent.elts
        if any(isinstance(k, ast.Constant) and k.value in BUILT_IN and k.value not in SHARED for k in items):
            return True   # beside another model's name: {"pertvae": 0.5, "vae": 0.75}
    while isinstance(parent, ast.Dict | ast.Set | ast.Tuple | ast.List):
        parent = parents.get(parent)
        if isinstance(parent, ast.Assign | ast.AnnAssign):
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            return any(_mentions_model(t) for t in targets)
    return False


def findings(source: str, rel: str) -> list[str]:
    """``rel:line: "name"`` of every literal in ``source`` that spells a model's name as a model."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    scopes = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    docstrings = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, scopes) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and node.value in BUILT_IN) or id(node) in docstrings:
            continue
        if isinstance(parents.get(node), ast.JoinedStr):
            continue
        if node.value in FEATURE_SETS and rel.startswith(FEATURE_SETS[node.value]):
            continue
        if node.value in SHARED and not _model_context(node, parents):
            continue
        out.append(f"{rel}:{node.lineno}: {node.value!r}")
    return out


def test_model_names_live_in_their_contenders_and_the_presets():
    found = []
    for top in ("harness", "pertvae_core"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(SKIP):
                found += findings(path.read_text(), rel)
    assert not found, "model names outside harness/contenders/ and the presets:\n" + "\n".join(found)


def test_the_check_finds_what_it_should():
    flagged = '''
if task.model == "pertvae": pass
if "pertvae" in models: pass
mi = models.index("pertvae")
vae = ds.sel(model="vae")
CHEAP = frozenset({"pca", "baselines"})
MODEL_METHODS = {"pertvae": ("pertvae", "pertvae_rec")}
for model, color in (("vae", "b"),): pass
EPOCH_FRACTION = {"pertvae": 0.5, "vae": 0.75}
'''
    got = sorted(int(g.split(":")[1]) for g in findings(flagged, "harness/x.py"))
    assert got == [2, 3, 4, 5, 6, 6, 7, 7, 8, 9, 9], got   # line 7: the table's key and its value's "pertvae"
    kept = '''
"""A docstring naming "vae"."""
REFERENCE = "pertvae"
LABELS = {"pertvae": "PertVAE", "pertvae_rec": "no drug"}
scores = {"pertvae": 1.0}
name = "pertvae_rec" if rec else "pertvae"
text = f"{x}vae"
'''
    assert findings(kept, "harness/x.py") == []
    assert findings('spec == "pca"', "pertvae_core/response_features.py") == []
    assert findings('spec == "pca"', "harness/report.py") == ["harness/report.py:1: 'pca'"]
