"""The package's imports follow the story: a module imports only modules of earlier notebooks (a section NN after its
deep dives NNa, NNb, ...), so a reader who reads the notebooks in order never meets a name defined later."""
import ast, json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def notebook_of_module() -> dict[str, str]:
    "Module name -> the notebook that exports it (its `#| default_exp`)."
    out = {}
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for cell in json.loads(nb.read_text())['cells']:
            m = re.search(r'#\|\s*default_exp\s+(\S+)', ''.join(cell['source']))
            if m: out[m.group(1)] = nb.stem
    return out

def story_key(stem: str) -> tuple:
    "'03' (a section) sorts after '03a'...'03k' (its deep dives); '99_cli' last."
    num, rest = re.match(r'(\d+)([a-z]?)_', stem).groups()
    return (int(num), rest or '~')

def imported_modules(path: Path) -> set[str]:
    "omr_blog modules a file imports anywhere (function-local imports count: they are dependencies too)."
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level == 1: names.add(node.module.split('.')[0])
            elif node.module.startswith('omr_blog.'): names.add(node.module.split('.')[1])
            elif node.module == 'omr_blog': names.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.split('.')[1] for a in node.names if a.name.startswith('omr_blog.'))
    return names

def test_imports_follow_the_numbering():
    nbs = notebook_of_module()
    forward = []
    for mod, nb in nbs.items():
        for dep in imported_modules(ROOT/'omr_blog'/f'{mod}.py') - {mod}:
            assert dep in nbs, f'{mod} imports {dep}, which no notebook exports'
            if story_key(nbs[dep]) > story_key(nb): forward.append(f'{mod} ({nb}) -> {dep} ({nbs[dep]})')
    assert not forward, 'imports against the story: ' + '; '.join(forward)

def test_every_module_comes_from_a_notebook():
    stale = {p.stem for p in (ROOT/'omr_blog').glob('*.py')} - set(notebook_of_module()) - {'__init__', '_modidx'}
    assert not stale, f'modules no notebook exports (left from a rename?): {sorted(stale)}'

def test_the_story_order_itself():
    assert sorted(['03_the_experiment', '03k_ctc_runs', '03a_config', '04a_transcribe', '99_cli'], key=story_key) == \
        ['03a_config', '03k_ctc_runs', '03_the_experiment', '04a_transcribe', '99_cli']
