// Package playbooks loads, validates and evaluates soar playbooks.
//
// A playbook is one YAML file, reviewed and versioned in git, that says which
// alerts matter (match), how alerts group into incidents (incidentKey and
// window) and which steps the incident's workflow runs:
//
//	name: terminal-shell-in-container
//	description: Contain a pod in which someone opened an interactive shell.
//	match: alert.rule == "Terminal shell in container" && alert.k8s.pod != ""
//	incidentKey: alert.k8s.namespace + "/" + alert.k8s.pod
//	window: 1h
//	workflow: Respond
//	steps:
//	  - id: contain
//	    action: kubernetes.quarantine
//	    with:
//	      namespace: alert.k8s.namespace
//	      pod: alert.k8s.pod
//
// Expressions are written in expr-lang (github.com/expr-lang/expr) against the
// typed environment Env. Every expression is compiled once when the playbook
// loads, so a typo fails the load and not the first real incident. Alert
// content is only ever a value in the environment: it is never compiled.
//
// Three things about YAML trip expression authors up. A value that starts
// with a double quote is a YAML string, so quote the whole expression when
// it starts with one ('"T1059" in alert.tags'). " #" starts a YAML comment,
// so quote expressions that use # in predicates. And step parameters are
// expressions too, so a literal string needs expr quotes inside YAML ones:
// reason: '"interactive shell"'.
//
// Expressions cannot call the builtins that read the clock, the time zone or
// Go's random map order (now, date, timezone, keys, values, toPairs); they
// are limited in size at compile time and in memory at run time.
//
// The dispatcher calls Load once and then Set.Match for every alert. Load
// indexes the playbooks by the rules their match expressions pin
// (alert.rule == "..." && ..., or alert.rule in [...]), and Set.Match skips
// those pinned to other rules than the alert's, with the same result as
// running them. A match
// becomes a Temporal workflow whose ID is IncidentID, so duplicate alerts for
// one incident signal one workflow. The workflow receives the playbook as a
// Spec and evaluates each step's parameters with EvalParams, which is
// deterministic and therefore safe in workflow code.
package playbooks
