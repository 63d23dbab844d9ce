package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/soar-dev/soar/activities/contract"
	"github.com/soar-dev/soar/connectors/kube"
	"github.com/soar-dev/soar/playbooks"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Action describes one action a playbook step can run: what it takes, what it
// returns, what it needs from Kubernetes, how to undo it, and the code that
// runs it. Each action is one value, defined with Define in a file of its own
// (activities/<action>.go) and listed in catalogue.go. Playbooks are checked
// against it at load, and the facts a workflow needs about it are pinned into
// the compiled step then (ActionFacts); 'soar actions list' prints it, and
// the RBAC in deploy/ is generated from its permissions.
type Action struct {
	Name    string  `json:"name"`
	Summary string  `json:"summary"`
	Params  []Param `json:"params"`
	Output  []Field `json:"output"`
	// Destructive actions stop a workload or destroy what evidence it holds,
	// even when an inverse can start it again. A playbook step running one
	// needs an approval step before it (or withoutApproval: true).
	Destructive bool `json:"destructive"`
	// Inverse names the action that undoes this one, when there is one.
	Inverse string `json:"inverse,omitempty"`
	// InverseOf names the action this one undoes, when it only exists to
	// undo it: such actions run on release and are not written in steps.
	InverseOf string `json:"inverseOf,omitempty"`
	// Attempt bounds one attempt of the action when the step sets no
	// timeout; zero means the workflow's default (30s).
	Attempt time.Duration `json:"attempt,omitempty"`
	// RetryFor bounds all attempts when the step sets no timeout; zero
	// means the workflow's default (five minutes). Ticket actions wait
	// longer for an outage to end.
	RetryFor time.Duration `json:"retryFor,omitempty"`
	// Lane says how the workflow schedules the action: LaneDirect (as an
	// activity of its own), LaneSlack (in the incident's Slack outbox, after
	// its thread exists), LaneTicket (with the incident's ticket) or
	// LaneLocal (as a local activity when it is the incident's first action;
	// only for quick, idempotent containment).
	Lane string `json:"lane,omitempty"`
	// Role is the deploy/ ClusterRole that grants its permissions.
	Role string `json:"role"`
	// Permissions are the Kubernetes RBAC rules the worker needs for it.
	Permissions []Permission `json:"permissions"`

	run func(a *Activities, ctx context.Context, req ActionRequest) (map[string]any, error)
}

// Lanes of Action.Lane.
const (
	LaneDirect = playbooks.LaneDirect
	LaneSlack  = playbooks.LaneSlack
	LaneTicket = playbooks.LaneTicket
	LaneLocal  = playbooks.LaneLocal
)

// Param is one parameter of an action, set in a step's "with".
type Param struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Required bool   `json:"required"`
	// Default says what an unset parameter means.
	Default string `json:"default,omitempty"`
	// FromAlert names the field of the alert's kubernetes section that fills
	// the parameter when the step leaves it out (namespace, pod, podUID).
	FromAlert string `json:"fromAlert,omitempty"`
	Doc       string `json:"doc"`
}

// Field is one field of an action's output, as later steps and the incident
// see it.
type Field struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Doc  string `json:"doc"`
}

// Permission is one RBAC rule: verbs on a resource of an API group ("" is the
// core group).
type Permission struct {
	Group    string   `json:"group"`
	Resource string   `json:"resource"`
	Verbs    []string `json:"verbs"`
	// Role, when set, is the role this permission is granted through
	// instead of its action's (RoleCheckpoint).
	Role string `json:"role,omitempty"`
}

// Roles a permission is granted through, as ClusterRoles in deploy/rbac.yaml.
const (
	// RoleResponder holds what containment needs: pods, policies, nodes,
	// workloads.
	RoleResponder = "responder"
	// RoleEvidence holds what the snapshot needs to read the pod, its
	// owners, node, events and logs.
	RoleEvidence = "evidence"
	// RoleCheckpoint holds nodes/proxy create, which the snapshot needs for
	// checkpoint: true only. RBAC cannot narrow it to the kubelet's
	// checkpoint path, so it is a role of its own, bound only when an
	// operator opts in (deploy/checkpoint-rbac.yaml).
	RoleCheckpoint = "checkpoint"
	// RoleLocks holds get and update on the lock list, the ConfigMap
	// soar-locks in soar's namespace: a Role in deploy/quarantine-lock.yaml
	// (resourceNames: soar-locks), not a ClusterRole.
	RoleLocks = "locks"
	// RoleNone means the action needs nothing from Kubernetes (Slack,
	// tickets).
	RoleNone = "none"
)

// Define completes the description of an action from its typed input and
// output, and binds the method that runs it. The parameters a step may set
// are In's fields and the output later steps see is Out's, by their JSON
// names, described by their tags: `doc` (required), `default` (what an unset
// parameter means), `required:"true"` and `fromAlert` (the field of the
// alert's kubernetes section that fills an unset parameter). Embedded structs
// contribute their fields. Define panics on a field without a doc: a
// programming error that every test run finds.
func Define[In, Out any](meta Action, run func(a *Activities, ctx context.Context, in In, req ActionRequest) (Out, error)) Action {
	meta.Params = paramsOf(meta.Name, reflect.TypeFor[In]())
	meta.Output = fieldsOf(meta.Name, reflect.TypeFor[Out]())
	meta.run = func(a *Activities, ctx context.Context, req ActionRequest) (map[string]any, error) {
		var in In
		if err := decodeParams(req, &in); err != nil {
			return nil, err
		}
		if meta.Role == RoleEvidence {
			// Evidence waits while containment needs the API server.
			ctx = kube.WithLowPriority(ctx)
		}
		out, err := run(a, ctx, in, req)
		if err != nil {
			return nil, err
		}
		return toMap(out)
	}
	return meta
}

// structField is one JSON-visible field of a struct, embedded ones
// flattened.
type structField struct {
	name string
	typ  reflect.Type
	tag  reflect.StructTag
}

func jsonFields(t reflect.Type) []structField {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []structField
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, structField{name: name, typ: f.Type, tag: f.Tag})
	}
	return out
}

func paramsOf(action string, t reflect.Type) []Param {
	var ps []Param
	for _, f := range jsonFields(t) {
		ps = append(ps, Param{
			Name:      f.name,
			Type:      typeName(f.typ),
			Required:  f.tag.Get("required") == "true",
			Default:   f.tag.Get("default"),
			FromAlert: f.tag.Get("fromAlert"),
			Doc:       mustDoc(action, "parameter", f),
		})
	}
	return ps
}

func fieldsOf(action string, t reflect.Type) []Field {
	var fs []Field
	for _, f := range jsonFields(t) {
		fs = append(fs, Field{Name: f.name, Type: typeName(f.typ), Doc: mustDoc(action, "output", f)})
	}
	return fs
}

func mustDoc(action, what string, f structField) string {
	doc := f.tag.Get("doc")
	if doc == "" {
		panic(fmt.Sprintf("activities: %s: %s %s has no doc tag", action, what, f.name))
	}
	return doc
}

// typeName is the type of a value as a playbook author sees it in YAML.
func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list"
	default:
		return "map"
	}
}

// Register registers every catalogue action with r (a worker, or a test
// environment) as an activity named after the action. The Quarantine method,
// which incidents started before generic actions still call, is registered
// separately with RegisterActivity(a).
func Register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}, a *Activities) {
	register(r, a, func(string) bool { return true })
}

// RegisterKubernetes registers, as Register does, only the actions that act
// on a Kubernetes cluster (contract.KubernetesPrefix): what a cluster's own
// worker runs.
func RegisterKubernetes(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}, a *Activities) {
	register(r, a, func(name string) bool { return strings.HasPrefix(name, contract.KubernetesPrefix) })
}

func register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}, a *Activities, want func(string) bool) {
	for _, def := range Catalogue() {
		if !want(def.Name) {
			continue
		}
		name := def.Name
		fn := func(ctx context.Context, req ActionRequest) (map[string]any, error) {
			return a.run(ctx, name, req)
		}
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

// run decodes the request for action name, runs it and encodes its output.
func (a *Activities) run(ctx context.Context, name string, req ActionRequest) (map[string]any, error) {
	def, ok := Lookup(name)
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError("unknown action "+name, ErrTypeInvalidRequest, nil)
	}
	req.Action = name
	return def.run(a, ctx, req)
}

// decodeParams fills dst, a pointer to an action's input struct, from the
// request's Undo (what the undone action reported) and then its Params (what
// the step set), so a parameter the playbook wrote wins. A parameter of the
// wrong type is a non-retryable InvalidRequest naming it.
func decodeParams(req ActionRequest, dst any) error {
	for _, src := range []map[string]any{req.Undo, req.Params} {
		if len(src) == 0 {
			continue
		}
		raw, err := json.Marshal(src)
		if err != nil {
			return invalid("%s: encode parameters: %v", req.Action, err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(dst); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return invalid("%s: parameter %s must be %s, not %s", req.Action, te.Field, jsonKind(te.Type.Kind().String()), te.Value)
			}
			return invalid("%s: parameters: %v", req.Action, err)
		}
	}
	return nil
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"), strings.HasPrefix(goKind, "float"):
		return "a number"
	case goKind == "bool":
		return "true or false"
	case goKind == "map", goKind == "struct":
		return "a mapping"
	case goKind == "slice":
		return "a list"
	default:
		return "a " + goKind
	}
}

// toMap encodes an action's output struct as the map the workflow records.
func toMap(v any) (map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("activities: encode output: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("activities: encode output: %w", err)
	}
	return m, nil
}

// invalid is a non-retryable InvalidRequest error.
func invalid(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrTypeInvalidRequest, nil)
}
