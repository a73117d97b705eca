"""The Helm chart, rendered and linted by Helm's own Go engine (helm-python-sdk),
its manifests checked against Kubernetes' schemas (kubernetes-validate), and
the config it mounts read by the real binary.

Run by scripts/test.sh, which installs both packages into a virtualenv:
    RESET_PIPELINE_BIN=target/debug/reset-pipeline python -m unittest tests/helm/test_chart.py
"""

import json
import os
import pathlib
import subprocess
import tempfile
import unittest

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "reset-pipeline"
FULL_VALUES = yaml.safe_load((ROOT / "tests" / "helm" / "values-full.yaml").read_text())
KUBERNETES = "1.35.0"
BINARY = os.environ.get("RESET_PIPELINE_BIN", str(ROOT / "target" / "debug" / "reset-pipeline"))
# Kinds that are not part of Kubernetes itself, checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
RULES_FILE = CHART / "alerts" / "reset-pipeline.rules.yaml"
RULES_TESTS = ROOT / "tests" / "alerts" / "reset-pipeline.test.yaml"
# promtool, from Debian's prometheus package, which scripts/test.sh unpacks.
PROMTOOL = os.environ.get("PROMTOOL", "promtool")


def render(values=None, name="feed-prod", namespace="sensors"):
    """Every rendered manifest, as (template, object) pairs."""
    chart = helm.Chart.load(str(CHART))
    rendered = chart.render(values, name=name, namespace=namespace, is_install=True)
    objects = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects.append((template, document))
    return objects


def one(objects, kind, suffix=""):
    found = [o for _, o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{len(found)} {kind} objects named *{suffix}"
    return found[0]


def kinds(objects):
    return sorted(o["kind"] for _, o in objects)


class Lint(unittest.TestCase):
    def assert_clean(self, report):
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        self.assertEqual(problems, [], report)
        self.assertEqual(report["errors"], [], report)
        self.assertEqual(report["total_charts_linted"], 1)

    def test_default_values_lint_clean_in_strict_mode(self):
        self.assert_clean(helm.lint(str(CHART), strict=True, kube_version=f"v{KUBERNETES}"))

    def test_every_option_on_lints_clean_in_strict_mode(self):
        self.assert_clean(helm.lint(str(CHART), FULL_VALUES, strict=True, kube_version=f"v{KUBERNETES}"))

    def test_lint_reports_a_value_the_schema_refuses(self):
        report = helm.lint(str(CHART), {"replicaCount": "two"}, strict=True)
        self.assertTrue(report["errors"] or any(m["severity"] == 3 for m in report["messages"]), report)


class KubernetesSchema(unittest.TestCase):
    def validate_all(self, objects):
        validated = 0
        for template, obj in objects:
            if obj["kind"] in CUSTOM_KINDS:
                continue
            with self.subTest(template=template, kind=obj["kind"]):
                kubernetes_validate.validate(obj, KUBERNETES, strict=True)
                validated += 1
        return validated

    def test_default_render_is_valid_kubernetes(self):
        objects = render()
        self.assertEqual(
            kinds(objects),
            ["ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"],
        )
        self.assertEqual(self.validate_all(objects), 7)

    def test_full_render_is_valid_kubernetes(self):
        objects = render(FULL_VALUES)
        self.assertIn("ServiceMonitor", kinds(objects))
        self.assertIn("PrometheusRule", kinds(objects))
        self.assertEqual(self.validate_all(objects), len(objects) - len(CUSTOM_KINDS))
        check_prometheus_rule(self, one(objects, "PrometheusRule"))

    def test_an_invalid_manifest_is_caught(self):
        deployment = one(render(), "Deployment")
        deployment["spec"]["replicas"] = "three"
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


class ValuesSchema(unittest.TestCase):
    def refused(self, values):
        chart = helm.Chart.load(str(CHART))
        with self.assertRaises(helm.HelmError) as caught:
            chart.render(values, name="x", namespace="y", is_install=True)
        return str(caught.exception)

    def test_credentials_in_the_config_are_refused(self):
        message = self.refused({"config": {"reset": {"url": "https://r:8069", "client_secret": "x"}}})
        self.assertIn("client_secret", message)

    def test_wrong_types_and_enums_are_refused(self):
        self.assertIn("replicaCount", self.refused({"replicaCount": "two"}))
        self.assertIn("push", self.refused({"config": {"reset": {"url": "https://r", "push": "hourly"}}}))
        self.assertIn("format", self.refused({"config": {"kafka": {"bootstrap_servers": "k:9092"}, "input": {"format": "xml"}}}))
        self.assertIn("allowed_lateness", self.refused({"config": {"kafka": {"bootstrap_servers": "k:9092"}, "windowing": {"allowed_lateness": "ten"}}}))
        self.assertIn("serviceMonitor", self.refused({"serviceMonitor": {"enable": True}}))
        self.assertIn("resetCa", self.refused({"resetCa": {"secretName": "a", "configMapName": "b"}}))

    def test_credentials_cannot_be_overridden_through_extra_env(self):
        self.refused({"extraEnv": [{"name": "RESET_CLIENT_SECRET", "value": "x"}]})


def validate_mounted(config_map, env):
    """`reset-pipeline validate` on the ConfigMap's files, written as mounted;
    a CA file the config names is made (by openssl) and written in its place."""
    with tempfile.TemporaryDirectory() as folder:
        for name, text in config_map["data"].items():
            pathlib.Path(folder, name).write_text(text)
        config = yaml.safe_load(config_map["data"]["config.yaml"])
        ca_file = config.get("reset", {}).get("ca_file")
        if ca_file:
            mounted = pathlib.Path(folder, "ca.pem")
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-subj", "/CN=test CA", "-days", "1", "-keyout", os.devnull, "-out", str(mounted)],
                check=True, capture_output=True,
            )
            config["reset"]["ca_file"] = str(mounted)
            pathlib.Path(folder, "config.yaml").write_text(yaml.safe_dump(config))
        return subprocess.run(
            [BINARY, "validate", "--config", str(pathlib.Path(folder, "config.yaml"))],
            capture_output=True, text=True, env={**os.environ, **env},
        )


def check_prometheus_rule(test, rule):
    """The PrometheusRule CRD's schema (monitoring.coreos.com/v1), by hand:
    kubernetes-validate knows only Kubernetes' own kinds."""
    test.assertEqual(rule["kind"], "PrometheusRule")
    test.assertTrue(rule["metadata"]["name"])
    test.assertEqual(set(rule["spec"]), {"groups"})
    for group in rule["spec"]["groups"]:
        test.assertIsInstance(group["name"], str)
        for r in group["rules"]:
            test.assertLessEqual(set(r), {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"})
            test.assertIsInstance(r["alert"], str)
            test.assertIsInstance(r["expr"], str)
            if "for" in r:
                test.assertRegex(r["for"], r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
            for field in ("labels", "annotations"):
                test.assertTrue(all(isinstance(k, str) and isinstance(v, str) for k, v in r.get(field, {}).items()), r)


class Alerts(unittest.TestCase):
    def test_promtool_accepts_the_rules_file(self):
        checked = subprocess.run([PROMTOOL, "check", "rules", str(RULES_FILE)], capture_output=True, text=True)
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        self.assertIn("SUCCESS: 9 rules found", checked.stdout + checked.stderr)

    def test_each_alert_fires_on_its_series_and_stays_quiet_on_healthy_ones(self):
        tested = subprocess.run([PROMTOOL, "test", "rules", str(RULES_TESTS)], capture_output=True, text=True)
        self.assertEqual(tested.returncode, 0, tested.stdout + tested.stderr)
        # Every alert of the file has a case.
        cases = RULES_TESTS.read_text()
        for group in yaml.safe_load(RULES_FILE.read_text())["groups"]:
            for r in group["rules"]:
                self.assertIn(f"alertname: {r['alert']}", cases)


class Wiring(unittest.TestCase):
    def test_the_default_config_is_accepted_by_the_binary(self):
        monitors = FULL_VALUES["monitors"][:1]
        config_map = one(render({"monitors": monitors}), "ConfigMap", "-pipeline")
        checked = validate_mounted(config_map, {"RESET_CLIENT_ID": "id", "RESET_CLIENT_SECRET": "secret"})
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        self.assertIn("ok: 1 monitors", checked.stdout)

    def test_the_grace_period_outlasts_the_drain_by_default(self):
        objects = render({"monitors": FULL_VALUES["monitors"][:1]})
        pod = one(objects, "Deployment")["spec"]["template"]["spec"]
        config = yaml.safe_load(one(objects, "ConfigMap", "-pipeline")["data"]["config.yaml"])
        drain = config["reset"]["drain_timeout"]
        self.assertTrue(drain.endswith("s") and drain[:-1].isdigit(), drain)
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], int(drain[:-1]) + 20)

    def test_the_deployment_mounts_the_configmap_the_binary_reads(self):
        objects = render(FULL_VALUES)
        deployment = one(objects, "Deployment")
        [config_map] = [o for _, o in objects if o["kind"] == "ConfigMap" and "config.yaml" in o["data"]]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        volume = next(v for v in pod["volumes"] if v.get("configMap"))
        self.assertEqual(volume["configMap"]["name"], config_map["metadata"]["name"])
        mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
        config_arg = container["args"][container["args"].index("--config") + 1]
        self.assertEqual(container["args"][0], "run")
        self.assertEqual(pathlib.PurePosixPath(config_arg).parent, pathlib.PurePosixPath(mount["mountPath"]))
        self.assertEqual(pathlib.PurePosixPath(config_arg).name, "config.yaml")
        self.assertIn("config.yaml", config_map["data"])
        self.assertTrue(mount["readOnly"])

        # The binary itself accepts the mounted files as they are.
        credentials = {"RESET_CLIENT_ID": "id", "RESET_CLIENT_SECRET": "secret"}
        checked = validate_mounted(config_map, {**credentials, "KAFKA_SASL_PASSWORD": "from-the-secret"})
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        self.assertIn("ok: 2 monitors", checked.stdout)
        # Without the variable the Kafka password is missing, and the binary says so.
        unset = validate_mounted(config_map, credentials)
        self.assertNotEqual(unset.returncode, 0)
        self.assertIn(
            "kafka.properties.sasl.password: the environment variable KAFKA_SASL_PASSWORD is not set",
            unset.stdout + unset.stderr,
        )
        mounted = yaml.safe_load(config_map["data"]["config.yaml"])
        self.assertEqual(mounted["http"]["listen"], "0.0.0.0:9900")
        self.assertEqual(mounted["monitors"], {"topic": "monitor-registry", "file": "monitors.yaml"})
        self.assertEqual(container["ports"][0]["containerPort"], 9900)

    def test_a_private_ca_is_mounted_where_the_config_reads_it(self):
        for source, volume_kind, name_field in [
            ("secretName", "secret", "secretName"),
            ("configMapName", "configMap", "name"),
        ]:
            with self.subTest(source=source):
                values = {"monitors": FULL_VALUES["monitors"][:1], "resetCa": {source: "corporate-ca", "key": "bundle.pem"}}
                objects = render(values)
                pod = one(objects, "Deployment")["spec"]["template"]["spec"]
                volume = next(v for v in pod["volumes"] if v["name"] == "reset-ca")
                self.assertEqual(volume[volume_kind][name_field], "corporate-ca")
                self.assertEqual(volume[volume_kind]["items"], [{"key": "bundle.pem", "path": "bundle.pem"}])
                mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "reset-ca")
                self.assertTrue(mount["readOnly"])
                config = yaml.safe_load(one(objects, "ConfigMap", "-pipeline")["data"]["config.yaml"])
                self.assertEqual(config["reset"]["ca_file"], mount["mountPath"] + "/bundle.pem")
        # Without one, nothing is mounted and the system's roots alone are trusted.
        objects = render({"monitors": FULL_VALUES["monitors"][:1]})
        pod = one(objects, "Deployment")["spec"]["template"]["spec"]
        self.assertNotIn("reset-ca", [v["name"] for v in pod["volumes"]])
        config = yaml.safe_load(one(objects, "ConfigMap", "-pipeline")["data"]["config.yaml"])
        self.assertNotIn("ca_file", config["reset"])

    def test_credentials_come_only_from_the_secret(self):
        objects = render(FULL_VALUES)
        secret = one(objects, "Secret")
        container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        from_secret = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container["env"]
            if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
        }
        self.assertEqual(set(from_secret), {"RESET_CLIENT_ID", "RESET_CLIENT_SECRET", "KAFKA_SASL_PASSWORD"})
        self.assertEqual(from_secret.pop("KAFKA_SASL_PASSWORD")["name"], "kafka-credentials")
        for ref in from_secret.values():
            self.assertEqual(ref["name"], secret["metadata"]["name"])
            self.assertIn(ref["key"], secret["data"])
        plain = [e for e in container["env"] if e["name"].startswith("RESET_CLIENT")]
        self.assertTrue(all("value" not in e for e in plain))
        # The secret value appears in the Secret only, base64-encoded, and nowhere in clear.
        for template, obj in objects:
            self.assertNotIn(FULL_VALUES["credentials"]["clientSecret"], json.dumps(obj), template)

    def test_an_existing_secret_is_used_and_none_is_created(self):
        objects = render({"credentials": {"existingSecret": "reset-credentials"}})
        self.assertNotIn("Secret", kinds(objects))
        container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        names = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
        self.assertEqual(names, {"reset-credentials"})

    def test_a_config_change_rolls_the_pods(self):
        def checksum(values):
            return one(render(values), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

        self.assertEqual(checksum(None), checksum(None))
        self.assertNotEqual(checksum(None), checksum({"config": {"windowing": {"allowed_lateness": "20m"}}}))

    def test_pods_run_unprivileged_on_a_read_only_root(self):
        pod = one(render(), "Deployment")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
        self.assertTrue(container["securityContext"]["readOnlyRootFilesystem"])
        self.assertFalse(container["securityContext"]["allowPrivilegeEscalation"])
        self.assertEqual(container["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(container["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertIn("memory", container["resources"]["limits"])

    def test_the_service_monitor_scrapes_the_service(self):
        objects = render(FULL_VALUES)
        service = one(objects, "Service")
        monitor = one(objects, "ServiceMonitor")
        self.assertEqual(monitor["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(monitor["metadata"]["labels"]["release"], "kube-prometheus-stack")
        selector = monitor["spec"]["selector"]["matchLabels"]
        self.assertLessEqual(selector.items(), service["metadata"]["labels"].items())
        self.assertEqual(monitor["spec"]["endpoints"][0]["port"], service["spec"]["ports"][0]["name"])
        self.assertEqual(monitor["spec"]["namespaceSelector"]["matchNames"], ["sensors"])

    def test_the_prometheus_rule_carries_every_alert_of_the_rules_file(self):
        rule = one(render(FULL_VALUES), "PrometheusRule")
        self.assertEqual(rule["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(rule["metadata"]["labels"]["release"], "kube-prometheus-stack")
        check_prometheus_rule(self, rule)
        file = yaml.safe_load(RULES_FILE.read_text())
        expected = {r["alert"]: r for g in file["groups"] for r in g["rules"]}
        rendered = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
        self.assertEqual(sorted(rendered), sorted(expected))
        self.assertEqual(len(rendered), 9)
        for name, r in rendered.items():
            with self.subTest(alert=name):
                self.assertEqual(r["expr"], expected[name]["expr"])
                self.assertEqual(r.get("for"), expected[name].get("for"))
                # The values' labels win; the file's others stay.
                self.assertEqual(r["labels"], {**expected[name]["labels"], "team": "buildings", "severity": "page"})
                self.assertEqual(
                    r["annotations"],
                    {**expected[name]["annotations"], "runbook_url": "https://runbooks.example.com/reset-pipeline"},
                )
        # The rendered rules are valid Prometheus rules as they are.
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
            f.flush()
            checked = subprocess.run([PROMTOOL, "check", "rules", f.name], capture_output=True, text=True)
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_the_prometheus_rule_is_off_by_default(self):
        self.assertNotIn("PrometheusRule", kinds(render()))

    def test_the_service_selects_the_pods(self):
        objects = render()
        service = one(objects, "Service")
        pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(service["spec"]["selector"].items(), pod_labels.items())
        pdb = one(objects, "PodDisruptionBudget")
        self.assertLessEqual(pdb["spec"]["selector"]["matchLabels"].items(), pod_labels.items())

    def test_the_dashboard_is_a_grafana_dashboard_with_the_required_panels(self):
        objects = render(FULL_VALUES)
        config_map = one(objects, "ConfigMap", "-dashboard")
        self.assertEqual(config_map["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertEqual(config_map["metadata"]["namespace"], "monitoring")
        dashboard = json.loads(config_map["data"]["reset-pipeline.json"])
        expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
        for metric in [
            "records_consumed_total",
            "consumer_lag_records",
            "watermark_delay_seconds",
            "publish_latency_seconds_bucket",
            "answers_total",
            "rejects_total",
        ]:
            self.assertIn("reset_pipeline_" + metric, expressions)
        self.assertIn("sum by (code)", expressions)
        self.assertIn("sum by (reason)", expressions)


if __name__ == "__main__":
    unittest.main()
