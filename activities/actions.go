package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// ActionRequest is the input of every catalogue action's activity. Each
// action is registered as an activity named after it (kubernetes.quarantine),
// so the Temporal UI and history show what ran.
type ActionRequest struct {
	Action     string `json:"action"`
	IncidentID string `json:"incidentID"`
	// Step is the playbook step running the action; actions that store
	// something (snapshot) key it by incident and step, so a retried activity
	// finds what its earlier attempt stored.
	Step string `json:"step,omitempty"`
	// Params are the step's parameters, with the ones the playbook left out
	// filled from the incident's first alert (namespace, pod, podUID).
	Params map[string]any `json:"params,omitempty"`
	// Undo is the output of the action an inverse undoes: what it changed and
	// what was there before.
	Undo map[string]any `json:"undo,omitempty"`
	// DryRun asks for a plan: every write is sent as a server-side dry run, or
	// the action only describes what it would do.
	DryRun bool `json:"dryRun,omitempty"`
	// Incident tells actions that need it where the incident's Slack
	// thread is.
	Incident *IncidentContext `json:"incident,omitempty"`
}

// handler runs one action. Its input is decoded from the request's Params
// (and Undo) into the action's own struct; its output is encoded to a map
// for the workflow.
type handler func(a *Activities, ctx context.Context, req ActionRequest) (any, error)

// Register registers every catalogue action with r (a worker, or a test
// environment) as an activity named after the action. The Quarantine method,
// which incidents started before generic actions still call, is registered
// separately with RegisterActivity(a).
func Register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}, a *Activities) {
	for _, def := range Catalogue() {
		h := handlers[def.Name]
		if h == nil {
			panic("activities: catalogue action " + def.Name + " has no handler")
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
	h := handlers[name]
	if h == nil {
		return nil, temporal.NewNonRetryableApplicationError("unknown action "+name, ErrTypeInvalidRequest, nil)
	}
	req.Action = name
	out, err := h(a, ctx, req)
	if out == nil {
		return nil, err
	}
	m, encErr := toMap(out)
	if encErr != nil && err == nil {
		return nil, encErr
	}
	return m, err
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
		return nil, fmt.Errorf("encode output: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("encode output: %w", err)
	}
	return m, nil
}

// invalid is a non-retryable InvalidRequest error.
func invalid(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrTypeInvalidRequest, nil)
}

// needPod checks the target names of a pod action and the protected
// namespaces, before any API call.
func (a *Activities) needPod(action, namespace, pod string) error {
	if namespace == "" || pod == "" {
		return invalid("%s needs a namespace and a pod, got namespace %q pod %q", action, namespace, pod)
	}
	return a.allowedNamespace(action, namespace)
}

func (a *Activities) allowedNamespace(action, namespace string) error {
	if a.protected(namespace) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("namespace %q is protected: soar never runs %s there", namespace, action),
			ErrTypeProtectedNamespace, nil)
	}
	return nil
}
