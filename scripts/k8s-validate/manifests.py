"""Checks rendered Kubernetes manifests (`kubectl kustomize` output).

Run by scripts/k8s-validate.sh, which says what is checked and with what.

    manifests.py RENDERED.yaml SERVICEMONITOR_CHECK...

Every built-in object is validated against the Kubernetes JSON schemas of
each version in KUBERNETES_VERSIONS, strictly (an unknown field is an error).
ServiceMonitors go, as a JSON list on standard input, to the command given
after the file (scripts/k8s-validate/servicemonitor.mjs). Then what the
schemas let through: resource quantities the API server would not parse,
selectors that match nothing, ports named but not declared, config maps that
are not generated, and the timely cluster's hosts list as each pod's start-up
script builds it. Prints every problem; exits 1 if any.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

# The oldest version the manifests support (the StatefulSet pod-index label,
# on by default from 1.28) and the newest whose schemas kubernetes-validate carries.
KUBERNETES_VERSIONS = ["1.28", "1.37"]

# Objects the manifests refer to but the operator creates (k8s/README.md).
EXTERNAL_SECRETS = {"carbonflow-auth"}


# A resource quantity as the API server parses it ("2", "500m", "4Gi", "1e3").
# The JSON schemas accept any string there.
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def validate_schemas(objects, problems):
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(step) for step in error.path)
                problems.append(f"{name_of(obj)} (Kubernetes {version}): {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(f"{name_of(obj)}: {error.message}")


def validate_service_monitors(monitors, command, problems):
    result = subprocess.run(command, input=json.dumps(monitors), capture_output=True, text=True)
    if result.returncode != 0:
        problems.append(f"ServiceMonitor check ({' '.join(command)}) failed:\n{result.stdout}{result.stderr}".rstrip())


def check_quantities(objects, problems):
    """Every value under `requests`, `limits` and `sizeLimit`, at any depth."""

    def walk(node, path, obj):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("requests", "limits") and isinstance(value, dict):
                    quantities = [(f"{path}.{key}.{name}", quantity) for name, quantity in value.items()]
                elif key == "sizeLimit":
                    quantities = [(f"{path}.{key}", value)]
                else:
                    walk(value, f"{path}.{key}", obj)
                    continue
                for where, quantity in quantities:
                    if not QUANTITY.match(str(quantity)):
                        problems.append(f"{name_of(obj)}: {where.lstrip('.')}: {quantity!r} is not a quantity")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{path}.{index}", obj)

    for obj in objects:
        walk(obj, "", obj)


def selects(selector, labels):
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def pod_templates(objects):
    return [(obj, obj["spec"]["template"]) for obj in objects if obj["kind"] in ("StatefulSet", "Deployment", "DaemonSet")]


def check_references(objects, problems):
    templates = pod_templates(objects)
    services = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Service"}
    config_maps = {obj["metadata"]["name"]: {**obj.get("data", {}), **obj.get("binaryData", {})} for obj in objects if obj["kind"] == "ConfigMap"}
    for workload, template in templates:
        labels = template["metadata"].get("labels", {})
        if not selects(workload["spec"]["selector"].get("matchLabels"), labels):
            problems.append(f"{name_of(workload)}: its selector does not match its pod template's labels")
        for volume in template["spec"].get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
                problems.append(f"{name_of(workload)}: volume {volume['name']} names ConfigMap {volume['configMap']['name']}, which is not generated")
            if "secret" in volume and volume["secret"]["secretName"] not in EXTERNAL_SECRETS:
                problems.append(f"{name_of(workload)}: volume {volume['name']} names an undocumented Secret {volume['secret']['secretName']}")
        volumes = {volume["name"]: volume for volume in template["spec"].get("volumes", [])}
        for container in template["spec"]["containers"]:
            check_mounted_files(workload, container, volumes, config_maps, problems)
            for var in container.get("env", []):
                if "value" in var and "valueFrom" in var:
                    problems.append(f"{name_of(workload)}: env {var['name']} of container {container['name']} has both value and valueFrom")
            port_names = {port["name"] for port in container.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in port_names:
                    problems.append(f"{name_of(workload)}: {probe} uses port {port}, which container {container['name']} does not declare")
    for service in services.values():
        matched = [template for _, template in templates if selects(service["spec"].get("selector"), template["metadata"].get("labels", {}))]
        if not matched:
            problems.append(f"{name_of(service)}: its selector matches no pod template")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str) and not any(target in {p["name"] for c in t["spec"]["containers"] for p in c.get("ports", [])} for t in matched):
                problems.append(f"{name_of(service)}: targetPort {target} is not a port name of the pods it selects")
    for budget in (obj for obj in objects if obj["kind"] == "PodDisruptionBudget"):
        if not any(selects(budget["spec"]["selector"].get("matchLabels"), t["metadata"].get("labels", {})) for _, t in templates):
            problems.append(f"{name_of(budget)}: its selector matches no pod template")
    for monitor in (obj for obj in objects if obj["kind"] == "ServiceMonitor"):
        matched = [s for s in services.values() if selects(monitor["spec"]["selector"].get("matchLabels"), s["metadata"].get("labels", {}))]
        if not matched:
            problems.append(f"{name_of(monitor)}: its selector matches no Service")
        if not monitor["spec"].get("endpoints"):
            problems.append(f"{name_of(monitor)}: has no endpoints to scrape")
        for endpoint in monitor["spec"].get("endpoints", []):
            if not any(endpoint.get("port") in {p.get("name") for p in s["spec"]["ports"]} for s in matched):
                problems.append(f"{name_of(monitor)}: endpoint port {endpoint.get('port')} is not a port name of the Services it selects")


def check_mounted_files(workload, container, volumes, config_maps, problems):
    """A path the container's command names under a ConfigMap's mount must be one of its keys."""
    words = " ".join(container.get("command", []) + container.get("args", [])).split()
    for mount in container.get("volumeMounts", []):
        config_map = volumes.get(mount["name"], {}).get("configMap", {}).get("name")
        if config_map not in config_maps:
            continue
        for word in words:
            if word.startswith(mount["mountPath"] + "/") and word[len(mount["mountPath"]) + 1 :] not in config_maps[config_map]:
                problems.append(f"{name_of(workload)}: container {container['name']} runs {word}, which ConfigMap {config_map} does not hold")


def check_cluster(objects, problems):
    """The hosts list each engine pod builds must name every pod, in order, through the headless service."""
    services = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Service"}
    for statefulset in (obj for obj in objects if obj["kind"] == "StatefulSet"):
        spec = statefulset["spec"]
        name, namespace = statefulset["metadata"]["name"], statefulset["metadata"].get("namespace", "default")
        replicas = spec.get("replicas", 1)
        engine = spec["template"]["spec"]["containers"][0]
        plain_env = {var["name"]: var["value"] for var in engine.get("env", []) if "value" in var}
        if plain_env.get("CARBONFLOW_PROCESSES") != str(replicas):
            problems.append(
                f"{name_of(statefulset)}: CARBONFLOW_PROCESSES is {plain_env.get('CARBONFLOW_PROCESSES')!r} but replicas is {replicas}"
            )
            continue
        headless = services.get(spec["serviceName"])
        if headless is None or headless["spec"].get("clusterIP") != "None":
            problems.append(f"{name_of(statefulset)}: serviceName {spec['serviceName']} is not a headless Service of these manifests")
            continue
        if not headless["spec"].get("publishNotReadyAddresses"):
            problems.append(f"{name_of(headless)}: needs publishNotReadyAddresses, or pods cannot resolve peers before the cluster is ready")
        cluster_ports = [port["containerPort"] for port in engine["ports"] if port["name"] == "cluster"]
        expected = [f"{name}-{index}.{headless['metadata']['name']}.{namespace}.svc.cluster.local:{cluster_ports[0]}" for index in range(replicas)]
        for index in range(replicas):
            hosts = hosts_of_pod(engine, plain_env, f"{name}-{index}", namespace, index)
            if hosts != expected:
                problems.append(f"{name_of(statefulset)}: pod {index} would run with CARBONFLOW_HOSTS {hosts}, expected {expected}")


def hosts_of_pod(container, plain_env, pod_name, namespace, index):
    """Runs the container's command as the kubelet would for this pod, with a
    `carbonflow` on PATH that prints the CARBONFLOW_HOSTS it was started with."""
    with tempfile.TemporaryDirectory() as bin_dir:
        stub = os.path.join(bin_dir, "carbonflow")
        with open(stub, "w") as file:
            file.write('#!/bin/sh\nprintf "%s" "$CARBONFLOW_HOSTS"\n')
        os.chmod(stub, 0o755)
        env = dict(plain_env, POD_NAME=pod_name, POD_NAMESPACE=namespace, CARBONFLOW_PROCESS_ID=str(index), PATH=f"{bin_dir}:/usr/bin:/bin")
        result = subprocess.run(container["command"] + container.get("args", []), env=env, capture_output=True, text=True)
        if result.returncode != 0:
            return f"(the start-up command failed: {result.stderr.strip()})"
        return result.stdout.split(",")


def main():
    rendered, service_monitor_check = sys.argv[1], sys.argv[2:]
    with open(rendered) as file:
        objects = [obj for obj in yaml.safe_load_all(file) if obj]
    monitors = [obj for obj in objects if obj["kind"] == "ServiceMonitor"]
    builtin = [obj for obj in objects if obj["kind"] != "ServiceMonitor"]
    problems = []
    validate_schemas(builtin, problems)
    if monitors:
        validate_service_monitors(monitors, service_monitor_check, problems)
    # The checks below read fields the schemas require.
    if not problems:
        check_quantities(objects, problems)
        check_references(objects, problems)
        check_cluster(objects, problems)
    for problem in problems:
        print(f"error: {problem}")
    kinds = ", ".join(sorted({obj["kind"] for obj in objects}))
    print(f"{len(objects)} objects ({kinds}): {len(problems)} problems; schemas of Kubernetes {' and '.join(KUBERNETES_VERSIONS)}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
