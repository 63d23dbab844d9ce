package main

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/workflows"
)

// cliIdentity is who votes from this command line: "cli:" and the operating
// system user. Playbooks name it in an approval's approvers to let that user
// vote with 'soar approve'; Temporal's own authentication decides who may
// reach the incident at all.
func cliIdentity() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return "cli:" + name
	}
	return "cli:unknown"
}

func newDecideCmd(approve bool) *cobra.Command {
	var (
		tf      temporalFlags
		step    string
		comment string
		plan    string
	)
	verb, past := "deny", "denied"
	if approve {
		verb, past = "approve", "approved"
	}
	cmd := &cobra.Command{
		Use:   verb + " INCIDENT",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " an incident's open approval, as " + cliIdentity(),
		Long: `Vote on the open approval of an incident, as the operating system user
(` + cliIdentity() + `). The vote counts only if the approval step lists that
identity among its approvers; a second vote, a vote on no open approval or by
someone else is refused with the reason.

Approving a plan with a destructive action (delete_pod, evict_pod,
scale_to_zero) needs --plan with the plan's hash, which 'soar incident show'
prints with the plan: the vote then says which plan was approved, and is
refused if the incident asks about another.`,
		Args: cobra.ExactArgs(1),
		RunE: tf.withClient(func(cmd *cobra.Command, args []string, tc client.Client) error {
			user := cliIdentity()
			d := workflows.Decision{
				Step: step, User: user, Name: strings.TrimPrefix(user, "cli:"), Approve: approve, Comment: comment,
				Source: workflows.SourceCLI, PlanHash: plan,
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), incidents.VoteTimeout)
			defer cancel()
			svc := &incidents.Service{Temporal: tc, Log: zerolog.Nop()}
			st, err := svc.Vote(ctx, args[0], d)
			if err != nil {
				return fmt.Errorf("%s incident %s: %w", verb, args[0], err)
			}
			outcome := st.Outcome
			if outcome == "" {
				outcome = fmt.Sprintf("still open, %d of %d approvals", st.Approved(), st.Quorum)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "incident %s: step %s %s by %s; approval %s\n", args[0], st.Step, past, d.User, outcome)
			return nil
		}),
	}
	tf.register(cmd.Flags())
	cmd.Flags().StringVar(&step, "step", "", "the approval step to vote on (default: the only open one)")
	cmd.Flags().StringVar(&comment, "comment", "", "why, recorded with the vote")
	cmd.Flags().StringVar(&plan, "plan", "", "the hash of the plan you approve, as 'soar incident show' prints it (needed to approve a destructive plan)")
	return cmd
}
