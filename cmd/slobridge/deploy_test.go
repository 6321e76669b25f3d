package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/slobridge/slobridge/cmd/internal/app"
)

// dockerfile returns the repository's Dockerfile.
func dockerfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDockerfileBuildsAStaticNonRootImage runs what this machine can of
// the Dockerfile (no container engine runs in the test sandbox): the final
// stage is FROM scratch and runs as a numeric non-root user; its build
// command, run here as written, makes a static binary (no ELF interpreter)
// whose version shows the build arguments; and a config whose only
// writable path is the image's data volume passes `check`.
func TestDockerfileBuildsAStaticNonRootImage(t *testing.T) {
	df := dockerfile(t)
	stages := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	if len(stages) < 2 || stages[len(stages)-1][1] != "scratch" {
		t.Fatalf("the final stage is not FROM scratch: %v", stages)
	}
	final := df[strings.LastIndex(df, "FROM scratch"):]
	if m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindStringSubmatch(final); m == nil || m[1] == "0" {
		t.Fatalf("the final stage does not run as a numeric non-root user:\n%s", final)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*)$`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("no static go build line in the Dockerfile")
	}
	out := filepath.Join(t.TempDir(), "slobridge")
	cmdline := strings.NewReplacer("${VERSION}", "v0.3.0", "${COMMIT}", "abcdef012345", "${DATE}", "2026-12-06T00:00:00Z",
		"/out/slobridge", out, "./cmd/slobridge", ".").Replace(m[1])
	cmd := exec.Command("sh", "-c", cmdline)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary has an ELF interpreter: it is not static and would not run FROM scratch")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary needs shared libraries %v", libs)
	}
	v, err := exec.Command(out, "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "slobridge v0.3.0 (commit abcdef012345, built 2026-12-06T00:00:00Z") {
		t.Fatalf("version of the image's binary: %q %v", v, err)
	}
}

// TestSystemdUnitIsHardened runs `systemd-analyze verify` on the unit and
// requires an exposure score of at most 2.0 from `systemd-analyze
// security --offline` (the scale runs from 0, locked down, to 10).
func TestSystemdUnitIsHardened(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		msg := "systemd-analyze not found (apt-get install systemd)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	unit, err := os.ReadFile(filepath.Join("deploy", "slobridge.service"))
	if err != nil {
		t.Fatal(err)
	}
	// The unit names the installed binary; verify needs it to exist.
	dir := t.TempDir()
	bin := filepath.Join(dir, "slobridge")
	if err := os.Symlink(binary, bin); err != nil {
		t.Fatal(err)
	}
	u := filepath.Join(dir, "slobridge.service")
	if err := os.WriteFile(u, bytes.ReplaceAll(unit, []byte("/usr/local/bin/slobridge"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(sa, "verify", u).CombinedOutput(); err != nil || len(bytes.TrimSpace(b)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, b)
	}
	b, err := exec.Command(sa, "security", "--offline=true", "--threshold=20", u).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, b)
	}
	if !strings.Contains(string(b), "Overall exposure level") {
		t.Fatalf("systemd-analyze security said:\n%s", b)
	}
}

// TestKubernetesManifests checks the manifests offline: every document
// decodes strictly into its Kubernetes API type (an unknown or misspelt
// field fails), the Deployment probes /readyz and /healthz on the named
// port, runs as the image's non-root user with a read-only root
// filesystem and takes the PostgreSQL DSN from a Secret, a
// PodDisruptionBudget covers its pods, and the slobridge.yaml in the
// ConfigMap passes the configuration checks with its files and secrets in
// place.
func TestKubernetesManifests(t *testing.T) {
	dir := filepath.Join("deploy", "kubernetes")
	docs := map[string][]byte{}
	for _, name := range []string{"configmap.yaml", "deployment.yaml", "service.yaml", "pdb.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range splitYAML(b) {
			var meta struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal(d, &meta); err != nil {
				t.Fatalf("%s #%d: %v", name, i, err)
			}
			docs[meta.Kind+"/"+name+"/"+string(rune('0'+i))] = d
		}
	}
	var dep appsv1.Deployment
	var cm corev1.ConfigMap
	var pdb policyv1.PodDisruptionBudget
	services := 0
	for key, d := range docs {
		var into any
		switch kind, _, _ := strings.Cut(key, "/"); kind {
		case "Deployment":
			into = &dep
		case "ConfigMap":
			into = &cm
		case "PodDisruptionBudget":
			into = &pdb
		case "Service":
			into = &corev1.Service{}
			services++
		default:
			t.Fatalf("%s: unexpected kind", key)
		}
		if err := yaml.UnmarshalStrict(d, into); err != nil {
			t.Fatalf("%s does not decode strictly: %v", key, err)
		}
	}
	if services != 2 || pdb.Spec.MinAvailable == nil || pdb.Spec.Selector == nil ||
		pdb.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != dep.Spec.Template.Labels["app.kubernetes.io/component"] {
		t.Fatalf("services %d, PDB %+v: want two Services and a PDB over the Deployment's pods", services, pdb.Spec)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Fatalf("probes: %+v %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	sc, psc := c.SecurityContext, dep.Spec.Template.Spec.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || psc == nil || psc.RunAsUser == nil ||
		*psc.RunAsUser != 65532 || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Fatalf("security context %+v / %+v", sc, psc)
	}
	if !strings.Contains(dockerfile(t), "USER 65532:65532") {
		t.Fatal("the Deployment's user is not the image's")
	}
	if len(c.Env) == 0 || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.SecretKeyRef == nil {
		t.Fatalf("the PostgreSQL DSN does not come from a Secret: %+v", c.Env)
	}

	// The configuration in the ConfigMap, with its mounted files and
	// secrets put in place, passes the checks serve runs.
	tmp := t.TempDir()
	td, err := filepath.Abs(filepath.Join("..", "internal", "app", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"admin-token": "admin-token-0123456789", "cookie-secret": strings.Repeat("c", 48)} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	doc := strings.NewReplacer("/etc/slobridge/secrets/admin-token", filepath.Join(tmp, "admin-token"),
		"/etc/slobridge/secrets/cookie-secret", filepath.Join(tmp, "cookie-secret"),
		"/etc/slobridge/certs/saml-sp.crt", filepath.Join(td, "bridge-sp.crt"),
		"/etc/slobridge/secrets/saml-sp.key", filepath.Join(td, "bridge-sp.key")).Replace(cm.Data["slobridge.yaml"])
	t.Setenv("SLOBRIDGE_POSTGRES_DSN", "postgres://slobridge@postgres:5432/slobridge?sslmode=require")
	cfgFile := filepath.Join(tmp, "slobridge.yaml")
	if err := os.WriteFile(cfgFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Load(cfgFile); err != nil {
		t.Fatalf("the ConfigMap's slobridge.yaml does not pass the checks:\n%v", err)
	}
}

// splitYAML splits a multi-document YAML file at its "---" lines.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "---" {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			continue
		}
		cur.WriteString(sc.Text() + "\n")
	}
	docs = append(docs, cur.Bytes())
	out := docs[:0]
	for _, d := range docs {
		var probe map[string]any
		if yaml.Unmarshal(d, &probe) == nil && len(probe) > 0 {
			out = append(out, d)
		}
	}
	return out
}
