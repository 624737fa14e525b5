"""deploy/kubernetes/inferswarm.yaml cannot be applied here (no cluster): check that its pieces fit the
code and each other: the config in the ConfigMap is valid, the container args parse as master and
worker, workers find the master's Service on its port, and both run the same config; and every resource
is valid against the Kubernetes API's own schemas (kubernetes-validate, strict)."""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from inferswarm.cli.parser import build_parser
from inferswarm.cli.run import check_distributed
from inferswarm.config import load_config
from inferswarm.locust.distributed import fingerprint
from tests.compose_file import services
from tests.conftest import REPO

MANIFEST = REPO / "deploy" / "kubernetes" / "inferswarm.yaml"


def documents() -> dict[tuple[str, str], dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return only


def args_of(job: dict[str, Any]) -> argparse.Namespace:
    return build_parser().parse_args([str(a) for a in container(job)["args"]])


def test_every_object_is_complete() -> None:
    docs = documents()
    assert set(docs) == {
        ("ConfigMap", "inferswarm-config"),
        ("PersistentVolumeClaim", "inferswarm-results"),
        ("Service", "inferswarm-master"),
        ("Job", "inferswarm-master"),
        ("Job", "inferswarm-worker"),
    }
    for (kind, _), doc in docs.items():
        assert doc["apiVersion"] == ("batch/v1" if kind == "Job" else "v1")
    for job in (docs[("Job", "inferswarm-master")], docs[("Job", "inferswarm-worker")]):
        pod = job["spec"]["template"]["spec"]
        assert pod["restartPolicy"] in ("Never", "OnFailure")  # what a Job allows
        mounts = {m["name"] for m in container(job)["volumeMounts"]}
        assert mounts <= {v["name"] for v in pod["volumes"]}
        # the same image as the compose stack
        assert container(job)["image"] == services()["master"]["image"]


def test_the_config_is_valid_and_the_same_on_both_sides(write_config: Callable[..., Path]) -> None:
    docs = documents()
    text = docs[("ConfigMap", "inferswarm-config")]["data"]["run.yaml"]
    config = load_config(write_config(text, "run.yaml"))
    assert config.name == "k8s-stress"
    master, worker = args_of(docs[("Job", "inferswarm-master")]), args_of(docs[("Job", "inferswarm-worker")])
    assert master.config == worker.config == "/config/run.yaml"
    assert fingerprint(config) == fingerprint(load_config(write_config(yaml.safe_load(text), "again.yaml")))


def test_master_and_workers_meet_through_the_service() -> None:
    docs = documents()
    master_job, worker_job = docs[("Job", "inferswarm-master")], docs[("Job", "inferswarm-worker")]
    master, worker = args_of(master_job), args_of(worker_job)
    assert master.master and master.headless and not master.web and check_distributed(master) is None
    assert worker.worker and check_distributed(worker) is None
    service = docs[("Service", "inferswarm-master")]
    assert worker.master_host == service["metadata"]["name"]
    assert master.master_bind_host == "0.0.0.0"
    ports = {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports["workers"] == master.master_port == worker.master_port
    assert service["spec"]["selector"].items() <= master_job["spec"]["template"]["metadata"]["labels"].items()
    # the master waits for exactly the workers the Job starts
    assert master.expect_workers == worker_job["spec"]["parallelism"] == worker_job["spec"]["completions"]
    assert master.out == "/results"
    assert {"mountPath": "/results", "name": "results"} in container(master_job)["volumeMounts"]


# The oldest Kubernetes still in the upstream support window when this was written, and the newest the
# validator knows: the manifest uses nothing newer or removed.
KUBERNETES_VERSIONS = ["1.31", kubernetes_validate.latest_version()]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_validates_against_the_kubernetes_api_schemas(version: str) -> None:
    # kubernetes-validate checks each resource against the OpenAPI schemas of that Kubernetes release,
    # strictly: an unknown or misspelled field fails, as `kubectl apply --validate=strict` would.
    resources = documents()
    assert {kind for kind, _ in resources} == {"ConfigMap", "PersistentVolumeClaim", "Service", "Job"}
    for resource in resources.values():
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda job: job["spec"]["template"]["spec"]["containers"][0].update(argz=["run"]),
            "'argz' was unexpected",
        ),
        (lambda job: job["spec"].update(parallelism="four"), "'four' is not of type 'integer'"),
    ],
)
def test_the_schema_check_catches_a_broken_manifest(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    job = copy.deepcopy(documents()[("Job", "inferswarm-worker")])
    change(job)
    with pytest.raises(kubernetes_validate.ValidationError, match=re.escape(message)):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)
