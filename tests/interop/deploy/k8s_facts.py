"""Reads the Kubernetes manifests of deploy/k8s with PyYAML and prints, as one JSON object,
the documents (kind, name, the whole object) and the kustomization's resource list, for
tests/cli/deploy.rs to check against each other and against the idgw binary.

    python3 k8s_facts.py DIR
"""
import json
import pathlib
import sys

import yaml

root = pathlib.Path(sys.argv[1])
kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
documents = []
for path in sorted(root.glob("*.yaml")):
    if path.name == "kustomization.yaml":
        continue
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is not None:
            documents.append({"file": path.name, "kind": doc["kind"], "name": doc["metadata"]["name"], "object": doc})
print(json.dumps({"kustomization": kustomization, "documents": documents}))
