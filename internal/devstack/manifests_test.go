package devstack

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadManifestSetsNamespaceAndLabelsAndRefusesUnknownKinds(t *testing.T) {
	fsys := fstest.MapFS{
		"ok.yaml": {Data: []byte(`# comment only
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: list
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: role
  labels:
    keep: me
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: elsewhere
  namespace: other
`)},
		"deployment.yaml": {Data: []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n")},
		"version.yaml":    {Data: []byte("apiVersion: admissionregistration.k8s.io/v1beta1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: p\n")},
	}
	opts := ManifestOptions{FS: fsys, Namespace: "soar", Labels: map[string]string{"part-of": "soar"}}
	objs, err := readManifest(opts, "ok.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.String()+" "+o.obj.GetLabels()["part-of"]+o.obj.GetLabels()["keep"])
	}
	want := "ConfigMap soar/list (ok.yaml) soar|ClusterRole role (ok.yaml) soarme|ServiceAccount other/elsewhere (ok.yaml) soar"
	if strings.Join(got, "|") != want {
		t.Errorf("objects:\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	if !objs[0].kind.keep || objs[1].kind.keep {
		t.Errorf("only ConfigMaps are kept as they are: %+v", objs)
	}
	for file, want := range map[string]string{
		"deployment.yaml": "deployment.yaml: Deployment web: not a kind soar dev installs",
		"version.yaml":    "version.yaml: ValidatingAdmissionPolicy p: apiVersion admissionregistration.k8s.io/v1beta1, want admissionregistration.k8s.io/v1",
		"missing.yaml":    "open missing.yaml: file does not exist",
	} {
		if _, err := readManifest(opts, file); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", file, err, want)
		}
	}
}
