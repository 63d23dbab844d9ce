package testenv

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Namespace creates a namespace unless it exists.
func Namespace(t testing.TB, cs kubernetes.Interface, name string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// Pod creates a pod like a ReplicaSet's (app label, one container) and
// returns it as stored. It never runs: the test API server has no nodes.
func Pod(t testing.TB, cs kubernetes.Interface, namespace, name string, mods ...func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	Namespace(t, cs, namespace)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "docker.io/library/alpine:3.20"}}},
	}
	for _, m := range mods {
		m(p)
	}
	got, err := cs.CoreV1().Pods(namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// ReplacedPod replaces the pod namespace/name (creating it first if it is
// missing) with a namesake, as a StatefulSet would: it deletes it at once
// and creates a new pod of the same name. It returns the deleted one.
func ReplacedPod(t testing.TB, cs kubernetes.Interface, namespace, name string) *corev1.Pod {
	t.Helper()
	old, err := cs.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		old = Pod(t, cs, namespace, name)
	}
	if err := cs.CoreV1().Pods(namespace).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	Pod(t, cs, namespace, name)
	return old
}

// DeploymentChain creates what a Deployment controller would: a Deployment
// with the given replicas, its ReplicaSet (controlled by it) and one pod
// (controlled by the ReplicaSet). Nothing in the test API server reconciles
// them.
func DeploymentChain(t testing.TB, cs kubernetes.Interface, namespace, name string, replicas int32) (*appsv1.Deployment, *appsv1.ReplicaSet, *corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	Namespace(t, cs, namespace)
	const hash = "5d8f7"
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, "tier": "backend"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "docker.io/library/alpine:3.20"}}},
	}
	d, err := cs.AppsV1().Deployments(namespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: template,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rsTemplate := *template.DeepCopy()
	rsTemplate.Labels["pod-template-hash"] = hash
	rs, err := cs.AppsV1().ReplicaSets(namespace).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-" + hash, Namespace: namespace,
			Labels:          map[string]string{"app": name, "pod-template-hash": hash},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: new(true)}},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{
				MatchLabels:      map[string]string{"pod-template-hash": hash},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{name}}},
			},
			Template: rsTemplate,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := Pod(t, cs, namespace, rs.Name+"-x7k2p", func(p *corev1.Pod) {
		p.Labels = rsTemplate.Labels
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: new(true)}}
	})
	return d, rs, pod
}
