package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/workflows"
)

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
			tw := tabwriter.NewWriter(terminalWriter{cmd.OutOrStdout()}, 0, 0, 2, ' ', 0)
			// A CLUSTER column only when some incident has a cluster: a
			// single-cluster soar lists as it always did.
			clusters := slices.ContainsFunc(items, func(s incidents.Summary) bool { return s.Cluster != "" })
			header, row := "INCIDENT\tPLAYBOOK\tSTATUS\tOUTCOME\tSEVERITY\tTARGET\tOPENED", "%[1]s\t%[2]s\t%[3]s\t%[4]s\t%[5]s\t%[7]s\t%[8]s\n"
			if clusters {
				header, row = "INCIDENT\tPLAYBOOK\tSTATUS\tOUTCOME\tSEVERITY\tCLUSTER\tTARGET\tOPENED", "%[1]s\t%[2]s\t%[3]s\t%[4]s\t%[5]s\t%[6]s\t%[7]s\t%[8]s\n"
			}
			fmt.Fprintln(tw, header)
			for _, s := range items {
				target := s.Namespace + "/" + s.Pod
				if s.Pod == "" {
					target = "-"
				}
				fprintf(tw, row, s.ID, s.Playbook, s.Status, cmp.Or(s.Outcome, "-"), s.Severity, cmp.Or(s.Cluster, "-"), target, s.OpenedAt.Local().Format(time.DateTime))
			}
			return tw.Flush()
		}),
	}
	list.Flags().StringVar(&query, "query", "", "Temporal visibility query to filter by, e.g. \"SoarStatus = 'open' AND SoarOutcome = 'denied'\"")
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
	closeCmd := newStopCmd(false)
	releaseCmd := newStopCmd(true)
	for _, c := range []*cobra.Command{list, show} {
		tf.register(c.Flags())
		c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	}
	cmd.AddCommand(list, show, closeCmd, releaseCmd)
	return cmd
}

// newStopCmd is 'soar incident close', or 'soar incident release' when
// release: a request through soar's API, which proves it to the incident.
func newStopCmd(release bool) *cobra.Command {
	var (
		af     apiFlags
		reason string
	)
	cmd := &cobra.Command{
		Use:   "close ID",
		Short: "Close an open incident now instead of after its quiet window",
		Long: `Close an open incident now instead of after its quiet window, through
soar's HTTP API (the token as for 'soar approve'). The reason and the token's
identity are recorded as the incident's close reason.`,
		Args: cobra.ExactArgs(1),
	}
	path, verb, defaultReason := "close", "close", "closed from the command line"
	if release {
		cmd.Use = "release ID"
		cmd.Short = "Undo what an incident's actions did (a false positive) and close it"
		cmd.Long = `Undo, newest first, every action of the incident that has an inverse
(quarantine → release, cordon_node → uncordon_node, label_pod → restore_labels,
scale_to_zero → restore_scale…), then close the incident. Deleted or evicted
pods stay deleted. 'soar incident show ID' lists what was undone.

The request goes through soar's HTTP API (the token as for 'soar approve'):
the incident takes a release only with the proof soar's server adds.`
		path, verb, defaultReason = "release", "release", "released from the command line"
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, cancel := context.WithTimeout(cmd.Context(), incidents.VoteTimeout)
		defer cancel()
		var res incidents.StopResponse
		if err := af.post(ctx, "/api/v1/incidents/"+args[0]+"/"+path, incidents.StopBody{Reason: reason}, &res); err != nil {
			return fmt.Errorf("%s incident %s: %w", verb, args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "incident %s: %s requested\n", args[0], verb)
		return nil
	}
	af.register(cmd.Flags())
	cmd.Flags().StringVar(&reason, "reason", defaultReason, "why, recorded on the incident with who asked")
	return cmd
}

func writeJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printIncident(cmd *cobra.Command, d *incidents.Detail) {
	w := tabwriter.NewWriter(terminalWriter{cmd.OutOrStdout()}, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fprintf(w, "Incident:\t%s\n", d.ID)
	fprintf(w, "Playbook:\t%s (version %s)\n", d.Playbook, d.PlaybookVersion)
	fprintf(w, "Status:\t%s\n", d.Status)
	fprintf(w, "Outcome:\t%s\n", cmp.Or(d.Outcome, "-"))
	fprintf(w, "Severity:\t%s\n", d.Severity)
	if d.Cluster != "" {
		fprintf(w, "Cluster:\t%s\n", d.Cluster)
	}
	fprintf(w, "Opened:\t%s\n", d.OpenedAt.Local().Format(time.DateTime))
	if d.Failure != "" {
		fprintf(w, "Failure:\t%s\n", d.Failure)
	}
	st := d.State
	if st == nil {
		return
	}
	if !st.ClosedAt.IsZero() {
		fprintf(w, "Closed:\t%s (%s)\n", st.ClosedAt.Local().Format(time.DateTime), st.CloseReason)
	}
	if st.PlaybookCommit != "" {
		commit := st.PlaybookCommit
		if st.PlaybookModified {
			commit += " (file modified since)"
		}
		fprintf(w, "Playbook commit:\t%s\n", commit)
	}
	fprintf(w, "Incident key:\t%s\n", st.IncidentKey)
	fprintf(w, "Alerts:\t%d (last %s)\n", st.AlertCount, st.LastAlertAt.Local().Format(time.DateTime))
	if a := st.FirstAlert; a != nil {
		fprintf(w, "First alert:\t%s [%s] %s\n", a.Rule, a.Severity, a.ID)
		if a.Kubernetes.Pod != "" {
			fprintf(w, "Target:\tpod %s/%s (container %s, node %s)\n", a.Kubernetes.Namespace, a.Kubernetes.Pod, dash(a.Kubernetes.Container), dash(a.Kubernetes.Node))
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
		fprintf(w, "Ticket:\t%s\n", line)
	}
	if st.Ticket == nil && st.TicketError != "" {
		fprintf(w, "Ticket error:\t%s\n", st.TicketError)
	}
	if t := st.Slack; t != nil {
		switch {
		case t.TS != "":
			fprintf(w, "Slack thread:\t%s %s\n", t.Channel, t.TS)
		default:
			fprintf(w, "Slack thread:\tnone: %s\n", t.Skipped+t.Error)
		}
	}
	for _, a := range st.Approvals {
		outcome := a.Outcome
		if outcome == "" {
			outcome = "open until " + a.Deadline.Local().Format(time.DateTime)
		} else if !a.DecidedAt.IsZero() {
			outcome += " at " + a.DecidedAt.Local().Format(time.DateTime)
		}
		fprintf(w, "Approval %s:\t%s (quorum %d of %s)\n", a.Step, outcome, a.Quorum, strings.Join(a.Approvers, ", "))
		if a.PlanHash != "" {
			fprintf(w, "  plan %s:\t%s\n", a.PlanHash, planSummary(a.Plan))
		}
		if a.Requester != "" {
			fprintf(w, "  requester:\t%s (may not vote)\n", a.Requester)
		}
		if a.Escalated {
			fprintf(w, "  escalated:\t%s\n", a.EscalatedAt.Local().Format(time.DateTime))
		}
		if a.SlackError != "" {
			fprintf(w, "  slack error:\t%s\n", a.SlackError)
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
			fprintf(w, "  %s\t%s at %s [%s] %s\n", who, decision, v.At.Local().Format(time.DateTime), via, v.Comment)
		}
	}
	fmt.Fprintln(w, "Steps:")
	for _, s := range st.Steps {
		detail := ""
		if s.Error != "" {
			detail = s.ErrorType + ": " + s.Error
		} else if s.Degraded != "" {
			detail = "DEGRADED: " + s.Degraded
		} else if len(s.Output) > 0 {
			b, _ := json.Marshal(s.Output)
			detail = string(b)
		}
		if detail == "" {
			fprintf(w, "  %s\t%s\t%s\n", s.ID, s.Action, s.Status)
		} else {
			fprintf(w, "  %s\t%s\t%s\t%s\n", s.ID, s.Action, s.Status, detail)
		}
		// A quarantine that holds, but that anyone with edit rights could
		// undo, says so on a line of its own (docs/reference-monitor.md).
		if why, _ := s.Output["notTamperProof"].(string); why != "" && s.Status == workflows.StepSucceeded {
			fprintf(w, "  \t\t\tcontainment not tamper-proof: %s\n", why)
		}
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
