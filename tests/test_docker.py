"""The Dockerfile agrees with the repository: TensorFlow version, copied paths, .dockerignore.

No Docker engine is needed: the files are parsed. (`hadolint Dockerfile` in `.ci/run` lints it.)
"""

import os
import re

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.helpers import REPO

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def read(name: str) -> str:
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
        return f.read()


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """`(INSTRUCTION, arguments)` pairs, comments dropped and continuation lines joined."""
    text = re.sub(r"^\s*#.*\n", "", dockerfile, flags=re.M)
    text = re.sub(r"\\\n", " ", text)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip()
    ]


def requirement(requirements: list[str], name: str) -> Requirement:
    return next(r for r in map(Requirement, requirements) if r.name == name)


def base_image_tf_version() -> Version:
    args = [a for i, a in instructions(read("Dockerfile")) if i == "ARG"]
    image = next(a.split("=", 1)[1] for a in args if a.startswith("BASE_IMAGE="))
    name, _, tag = image.rpartition(":")
    assert name == "tensorflow/tensorflow", image
    match = re.match(r"(\d+\.\d+\.\d+)(-gpu)?$", tag)
    assert match, f"{image}: expected a tag like 2.21.0-gpu"
    return Version(match.group(1))


def test_base_image_tensorflow_is_inside_the_pyproject_range():
    project = tomllib.loads(read("pyproject.toml"))["project"]
    version = base_image_tf_version()
    tensorflow = requirement(project["dependencies"], "tensorflow")
    assert tensorflow.specifier.contains(version), (version, str(tensorflow))
    # The image installs the export extra against its own TensorFlow (pip constraint
    # tensorflow==<version>), so tensorflow-text of the same minor version must be allowed.
    text = requirement(project["optional-dependencies"]["export"], "tensorflow-text")
    assert text.specifier.contains(f"{version.major}.{version.minor}.0"), str(text)


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """`(negated, regex)` per .dockerignore line, with Docker's anchored glob syntax."""
    patterns = []
    for line in read(".dockerignore").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?)", glob):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                token, re.escape(token).replace(r"\[", "[").replace(r"\]", "]")
            )
        patterns.append((negated, re.compile(regex)))
    return patterns


def ignored(path: str, patterns) -> bool:
    """Whether Docker leaves `path` (relative, `/`-separated) out of the build context: the
    last pattern matching it or one of its parent directories decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, regex in patterns:
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negated
    return result


def copied_sources() -> list[str]:
    sources = []
    for instruction, args in instructions(read("Dockerfile")):
        if instruction in ("COPY", "ADD"):
            words = [w for w in args.split() if not w.startswith("--")]
            sources += [w.rstrip("/") for w in words[:-1]]
    return sources


def test_copied_paths_exist_and_reach_the_build_context():
    sources = copied_sources()
    assert {"pyproject.toml", "README.md", "t2t_lite", "configs", "scripts"} <= set(sources)
    patterns = dockerignore_patterns()
    for source in sources:
        path = os.path.join(REPO, source)
        assert os.path.exists(path), f"Dockerfile copies {source}, which does not exist"
        files = [source]
        if os.path.isdir(path):
            files = [
                os.path.relpath(os.path.join(root, name), REPO).replace(os.sep, "/")
                for root, _, names in os.walk(path)
                if "__pycache__" not in root
                for name in names
                if not name.endswith((".pyc", ".pyo"))
            ]
        kept = [f for f in files if not ignored(f, patterns)]
        assert kept == files, f".dockerignore drops {sorted(set(files) - set(kept))}"


def test_dockerignore_keeps_runs_data_and_environments_out():
    patterns = dockerignore_patterns()
    for path in ["runs/x/config.yaml", "data/train.en", ".venv/bin/python", ".venv-ci/x", ".git"]:
        assert ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    assert not ignored("t2t_lite/data/pipeline.py", patterns)  # `data` is anchored at the root
