package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/soar-dev/soar/incidents"
)

func newDecideCmd(approve bool) *cobra.Command {
	var (
		af      apiFlags
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
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " an incident's open approval, through soar's API",
		Long: `Vote on the open approval of an incident through soar's HTTP API, as the
identity of your API token: api:<token name>. The vote counts only if the
approval step lists that identity among its approvers; a second vote, a vote
on no open approval or by someone else is refused with the reason.

The token comes from SOAR_API_TOKEN (or SOAR_API_TOKEN_FILE), else from
.soar/api-token, which soar dev writes for the user who runs it. Votes never
go straight to Temporal: the incident takes a vote only with the proof that
soar's server adds after checking the token.

Approving a plan with a destructive action (delete_pod, evict_pod,
scale_to_zero) needs --plan with the plan's hash, which 'soar incident show'
prints with the plan: the vote then says which plan was approved, and is
refused if the incident asks about another.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), incidents.VoteTimeout)
			defer cancel()
			body := incidents.VoteRequest{Step: step, Approve: &approve, Comment: comment, PlanHash: plan}
			var res incidents.VoteResponse
			if err := af.post(ctx, "/api/v1/incidents/"+args[0]+"/votes", body, &res); err != nil {
				return fmt.Errorf("%s incident %s: %w", verb, args[0], err)
			}
			st := res.Approval
			outcome := st.Outcome
			if outcome == "" {
				outcome = fmt.Sprintf("still open, %d of %d approvals", st.Approved(), st.Quorum)
			}
			by := "you"
			if n := len(st.Votes); n > 0 {
				by = st.Votes[n-1].User
			}
			fmt.Fprintf(cmd.OutOrStdout(), "incident %s: step %s %s by %s; approval %s\n", args[0], st.Step, past, by, outcome)
			return nil
		},
	}
	af.register(cmd.Flags())
	cmd.Flags().StringVar(&step, "step", "", "the approval step to vote on (default: the only open one)")
	cmd.Flags().StringVar(&comment, "comment", "", "why, recorded with the vote")
	cmd.Flags().StringVar(&plan, "plan", "", "the hash of the plan you approve, as 'soar incident show' prints it (needed to approve a destructive plan)")
	return cmd
}
