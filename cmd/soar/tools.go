package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"sigs.k8s.io/yaml"

	"github.com/soar-dev/soar/activities"
	"github.com/soar-dev/soar/internal/alert"
	"github.com/soar-dev/soar/internal/app"
	"github.com/soar-dev/soar/internal/incidents"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

func newPlaybookCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "playbook", Short: "Work with playbooks"}
	cmd.AddCommand(newPlaybookExplainCmd(), newPlaybookTestCmd())
	cmd.AddCommand(&cobra.Command{
		Use:   "lint DIR...",
		Short: "Check every playbook in each directory; print every problem with file, line and column",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			out := cmd.OutOrStdout()
			failed := 0
			for _, dir := range dirs {
				set, err := playbooks.Load(dir, app.PlaybookOptions())
				var le *playbooks.LoadErrors
				switch {
				case errors.As(err, &le):
					for _, e := range le.Errs {
						fmt.Fprintln(out, e)
					}
					failed += len(le.Errs)
				case err != nil:
					fmt.Fprintf(out, "%s: %v\n", dir, err)
					failed++
				default:
					fmt.Fprintf(out, "%s: %d playbooks OK\n", dir, len(set.Playbooks()))
				}
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d problems found", failed)}
			}
			return nil
		},
	})
	return cmd
}

func newActionsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{Use: "actions", Short: "The actions playbook steps can use"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the actions this worker can run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "json" {
				return writeJSON(cmd, activities.Catalogue())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ACTION\tDESTRUCTIVE\tINVERSE\tPARAMETERS\tSUMMARY")
			for _, a := range activities.Catalogue() {
				var params []string
				for _, p := range a.Params {
					params = append(params, p.Name)
				}
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", a.Name, a.Destructive, dash(a.Inverse), dash(strings.Join(params, ",")), a.Summary)
			}
			return tw.Flush()
		},
	}
	show := &cobra.Command{
		Use:   "show ACTION",
		Short: "Show an action's parameters, output and the Kubernetes permissions it needs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, ok := activities.Lookup(args[0])
			if !ok {
				return fmt.Errorf("no action %q: 'soar actions list' shows them all", args[0])
			}
			if output == "json" {
				return writeJSON(cmd, a)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "%s\n%s\n\nDestructive:\t%v\nInverse:\t%s\n\nParameters:\n", a.Name, a.Summary, a.Destructive, dash(a.Inverse))
			for _, p := range a.Params {
				req := "optional"
				if p.Required {
					req = "required"
				}
				fmt.Fprintf(w, "  %s\t%s\t%s\t%s (default: %s)\n", p.Name, p.Type, req, p.Doc, dash(p.Default))
			}
			fmt.Fprintln(w, "\nOutput:")
			for _, f := range a.Output {
				fmt.Fprintf(w, "  %s\t%s\t%s\n", f.Name, f.Type, f.Doc)
			}
			fmt.Fprintln(w, "\nKubernetes permissions:")
			for _, p := range a.Permissions {
				group := p.Group
				if group == "" {
					group = "core"
				}
				fmt.Fprintf(w, "  %s\t%s\t%s\n", group, p.Resource, strings.Join(p.Verbs, ","))
			}
			return w.Flush()
		},
	}
	rbac := &cobra.Command{
		Use:   "rbac",
		Short: "Print the worker's ClusterRoles, generated from the actions' permissions",
		Long: `Print, as YAML, one ClusterRole per role: soar-worker-actions for the
containment actions and soar-worker-evidence for kubernetes.snapshot (it needs
nodes/proxy, which reaches every kubelet's API: grant it only if you use
snapshots). deploy/rbac.yaml holds the same rules, which a test checks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for i, cr := range activities.ClusterRoles() {
				b, err := yaml.Marshal(cr)
				if err != nil {
					return err
				}
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "---")
				}
				fmt.Fprint(cmd.OutOrStdout(), string(b))
			}
			return nil
		},
	}
	for _, c := range []*cobra.Command{list, show} {
		c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	}
	cmd.AddCommand(list, show, rbac)
	return cmd
}

func newAlertCmd() *cobra.Command {
	var (
		nf      natsFlags
		subject string
	)
	cmd := &cobra.Command{Use: "alert", Short: "Work with alerts"}
	send := &cobra.Command{
		Use:   "send FILE...",
		Short: "Publish JSON alerts to soar's alert stream, as a detector would",
		Long: `Publish each FILE (one JSON alert; - reads standard input) to NATS JetStream and
wait until the stream has stored it. Without --subject, a Falco event goes to
falco.<priority>.<rule> as Falcosidekick would publish it, any other alert to
alerts.<source>.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			nc, err := nf.connect("soar-alert-send", zerolog.Nop())
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			for _, f := range files {
				data, err := readInput(f)
				if err != nil {
					return err
				}
				subj := subject
				if subj == "" {
					subj = defaultSubject(data)
				}
				ack, err := js.Publish(cmd.Context(), subj, data)
				if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
					return fmt.Errorf("publish %s to %s: no stream captures that subject; is a soar dispatcher running?", f, subj)
				}
				if err != nil {
					return fmt.Errorf("publish %s to %s: %w", f, subj, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "published %s to %s (stream %s, sequence %d)\n", f, subj, ack.Stream, ack.Sequence)
			}
			return nil
		},
	}
	nf.register(send.Flags())
	send.Flags().StringVar(&subject, "subject", "", "subject to publish to (default: derived from the alert)")
	cmd.AddCommand(send)
	return cmd
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	s = strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(s), "_"), "_")
	if s == "" {
		return "unknown"
	}
	return s
}

// defaultSubject follows Falcosidekick's NATS subject, falco.<priority>.<rule>,
// for Falco events and uses alerts.<source> for anything else. Undecodable
// content still gets a subject: the dispatcher dead-letters it with the reason.
func defaultSubject(data []byte) string {
	a, err := alert.Decode(data, alert.Limits{})
	switch {
	case err != nil:
		return "alerts.unknown"
	case a.Format == "falco":
		return "falco." + slug(a.Severity.String()) + "." + slug(a.Rule)
	default:
		return "alerts." + slug(a.Source)
	}
}

func newIncidentCmd() *cobra.Command {
	var (
		tf     temporalFlags
		query  string
		limit  int
		output string
	)
	cmd := &cobra.Command{Use: "incident", Short: "List and inspect incidents"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List incidents, newest first",
		Args:  cobra.NoArgs,
		RunE: tf.withClient(func(cmd *cobra.Command, _ []string, tc client.Client) error {
			items, err := incidents.List(cmd.Context(), tc, tf.namespace, query, limit)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd, items)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "INCIDENT\tPLAYBOOK\tSTATUS\tSEVERITY\tTARGET\tOPENED")
			for _, s := range items {
				target := s.Namespace + "/" + s.Pod
				if s.Pod == "" {
					target = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Playbook, s.Status, s.Severity, target, s.OpenedAt.Local().Format(time.DateTime))
			}
			return tw.Flush()
		}),
	}
	list.Flags().StringVar(&query, "query", "", "Temporal visibility query to filter by, e.g. \"SoarStatus = 'contained'\"")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many incidents")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one incident: its alerts, the playbook version, and what each step did",
		Args:  cobra.ExactArgs(1),
		RunE: tf.withClient(func(cmd *cobra.Command, args []string, tc client.Client) error {
			d, err := incidents.Show(cmd.Context(), tc, tf.namespace, args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd, d)
			}
			printIncident(cmd, d)
			return nil
		}),
	}
	var reason string
	closeCmd := &cobra.Command{
		Use:   "close ID",
		Short: "Close an open incident now instead of after its quiet window",
		Args:  cobra.ExactArgs(1),
		RunE: tf.withClient(func(cmd *cobra.Command, args []string, tc client.Client) error {
			if err := tc.SignalWorkflow(cmd.Context(), args[0], "", workflows.SignalClose, reason); err != nil {
				return fmt.Errorf("close incident %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "incident %s: close requested\n", args[0])
			return nil
		}),
	}
	closeCmd.Flags().StringVar(&reason, "reason", "closed from the command line", "why, recorded on the incident")
	tf.register(closeCmd.Flags())
	var releaseReason string
	releaseCmd := &cobra.Command{
		Use:   "release ID",
		Short: "Undo what an incident's actions did (a false positive) and close it",
		Long: `Undo, newest first, every action of the incident that has an inverse
(quarantine → release, cordon_node → uncordon_node, label_pod → restore_labels,
scale_to_zero → restore_scale…), then close the incident. Deleted or evicted
pods stay deleted. 'soar incident show ID' lists what was undone.`,
		Args: cobra.ExactArgs(1),
		RunE: tf.withClient(func(cmd *cobra.Command, args []string, tc client.Client) error {
			why := releaseReason
			if why == "" {
				why = "released from the command line by " + cliIdentity()
			}
			if err := tc.SignalWorkflow(cmd.Context(), args[0], "", workflows.SignalRelease, why); err != nil {
				return fmt.Errorf("release incident %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "incident %s: release requested\n", args[0])
			return nil
		}),
	}
	releaseCmd.Flags().StringVar(&releaseReason, "reason", "", "why, recorded on the incident (default: who released it)")
	tf.register(releaseCmd.Flags())
	for _, c := range []*cobra.Command{list, show} {
		tf.register(c.Flags())
		c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	}
	cmd.AddCommand(list, show, closeCmd, releaseCmd)
	return cmd
}

func writeJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printIncident(cmd *cobra.Command, d *incidents.Detail) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "Incident:\t%s\n", d.ID)
	fmt.Fprintf(w, "Playbook:\t%s (version %s)\n", d.Playbook, d.PlaybookVersion)
	fmt.Fprintf(w, "Status:\t%s\n", d.Status)
	fmt.Fprintf(w, "Severity:\t%s\n", d.Severity)
	fmt.Fprintf(w, "Opened:\t%s\n", d.OpenedAt.Local().Format(time.DateTime))
	if d.Failure != "" {
		fmt.Fprintf(w, "Failure:\t%s\n", d.Failure)
	}
	st := d.State
	if st == nil {
		return
	}
	if !st.ClosedAt.IsZero() {
		fmt.Fprintf(w, "Closed:\t%s (%s)\n", st.ClosedAt.Local().Format(time.DateTime), st.CloseReason)
	}
	if st.PlaybookCommit != "" {
		commit := st.PlaybookCommit
		if st.PlaybookModified {
			commit += " (file modified since)"
		}
		fmt.Fprintf(w, "Playbook commit:\t%s\n", commit)
	}
	fmt.Fprintf(w, "Incident key:\t%s\n", st.IncidentKey)
	fmt.Fprintf(w, "Alerts:\t%d (last %s)\n", st.AlertCount, st.LastAlertAt.Local().Format(time.DateTime))
	if a := st.FirstAlert; a != nil {
		fmt.Fprintf(w, "First alert:\t%s [%s] %s\n", a.Rule, a.Severity, a.ID)
		if a.Kubernetes.Pod != "" {
			fmt.Fprintf(w, "Target:\tpod %s/%s (container %s, node %s)\n", a.Kubernetes.Namespace, a.Kubernetes.Pod, dash(a.Kubernetes.Container), dash(a.Kubernetes.Node))
		}
	}
	if t := st.Ticket; t != nil {
		line := t.Provider + " " + t.Key
		if t.URL != "" {
			line += " " + t.URL
		}
		line += fmt.Sprintf(" (%d comments", t.Comments)
		if t.Resolved {
			line += ", resolved"
		}
		line += ")"
		if t.Error != "" {
			line += "; last update failed: " + t.Error
		}
		fmt.Fprintf(w, "Ticket:\t%s\n", line)
	}
	if st.Ticket == nil && st.TicketError != "" {
		fmt.Fprintf(w, "Ticket error:\t%s\n", st.TicketError)
	}
	if t := st.Slack; t != nil {
		switch {
		case t.TS != "":
			fmt.Fprintf(w, "Slack thread:\t%s %s\n", t.Channel, t.TS)
		default:
			fmt.Fprintf(w, "Slack thread:\tnone: %s\n", t.Skipped+t.Error)
		}
	}
	for _, a := range st.Approvals {
		outcome := a.Outcome
		if outcome == "" {
			outcome = "open until " + a.Deadline.Local().Format(time.DateTime)
		} else if !a.DecidedAt.IsZero() {
			outcome += " at " + a.DecidedAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(w, "Approval %s:\t%s (quorum %d of %s)\n", a.Step, outcome, a.Quorum, strings.Join(a.Approvers, ", "))
		if a.PlanHash != "" {
			fmt.Fprintf(w, "  plan %s:\t%s\n", a.PlanHash, planSummary(a.Plan))
		}
		if a.Requester != "" {
			fmt.Fprintf(w, "  requester:\t%s (may not vote)\n", a.Requester)
		}
		if a.Escalated {
			fmt.Fprintf(w, "  escalated:\t%s\n", a.EscalatedAt.Local().Format(time.DateTime))
		}
		if a.SlackError != "" {
			fmt.Fprintf(w, "  slack error:\t%s\n", a.SlackError)
		}
		for _, v := range a.Votes {
			decision := "deny"
			if v.Approve {
				decision = "approve"
			}
			who := v.User
			if v.Name != "" && v.Name != strings.TrimPrefix(v.User, v.Source+":") {
				who += " (" + v.Name + ")"
			}
			via := dash(v.Source)
			if v.Team != "" {
				via += " team " + v.Team
			}
			if v.Via != "" {
				via += " via " + v.Via
			}
			fmt.Fprintf(w, "  %s\t%s at %s [%s] %s\n", who, decision, v.At.Local().Format(time.DateTime), via, v.Comment)
		}
	}
	fmt.Fprintln(w, "Steps:")
	for _, s := range st.Steps {
		line := fmt.Sprintf("  %s\t%s\t%s", s.ID, s.Action, s.Status)
		if s.Error != "" {
			line += "\t" + s.ErrorType + ": " + s.Error
		} else if len(s.Output) > 0 {
			b, _ := json.Marshal(s.Output)
			line += "\t" + string(b)
		}
		fmt.Fprintln(w, line)
	}
}

// planSummary lists an approval's planned steps.
func planSummary(plan []workflows.PlannedAction) string {
	if len(plan) == 0 {
		return "no action"
	}
	parts := make([]string, len(plan))
	for i, p := range plan {
		parts[i] = p.Step + " " + p.Action
		if p.Destructive {
			parts[i] += " (destructive)"
		}
	}
	return strings.Join(parts, ", ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
