// Package approvals records votes on incidents' approval steps: from Slack
// buttons, from 'soar approve' and from the HTTP API, all through one Temporal
// Update whose validator in the workflow decides who may vote. This package
// only gathers what the validator needs to know about the voter: the user
// groups among the approvers that Slack says they belong to, and their
// Slack profile when the approval names a requester.
package incidents

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/connectors/slack"
	"github.com/soar-dev/soar/internal/proof"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// Directory is what the service needs from Slack (*slack.Client): group
// members and user profiles, both cached there.
type Directory interface {
	GroupMembers(ctx context.Context, group string) ([]string, error)
	User(ctx context.Context, id string) (slack.User, error)
	UserByEmail(ctx context.Context, email string) (slack.User, error)
}

// Service records votes.
type Service struct {
	Temporal client.Client
	// Slack resolves user groups and profiles of Slack voters; nil when
	// Slack is not configured (then only user IDs listed as approvers
	// count).
	Slack Directory
	// Keys prove to the incident that soar took the vote or request from
	// an authenticated person (internal/proof).
	Keys *proof.Keys
	Log  zerolog.Logger
}

// Refused is a vote the incident did not take; Reason is for the voter.
type Refused struct{ Reason string }

func (e *Refused) Error() string { return e.Reason }

// Vote records d on the incident. A refusal is a *Refused; other errors are
// failures to reach Temporal or Slack.
func (s *Service) Vote(ctx context.Context, incident string, d workflows.Decision) (workflows.ApprovalState, error) {
	log := s.Log.With().Str("incident_id", incident).Str("step", d.Step).Str("user", d.User).Str("source", d.Source).Bool("approve", d.Approve).Logger()
	st, err := s.state(ctx, incident)
	if err != nil {
		return s.refused(log, err)
	}
	if st.Status == workflows.StatusClosed {
		return s.refused(log, &Refused{Reason: fmt.Sprintf("incident %s is closed (%s); votes are no longer taken", incident, st.CloseReason)})
	}
	if d.Source == workflows.SourceSlack && s.Slack != nil {
		if err := s.describeSlackVoter(ctx, st, &d); err != nil {
			return workflows.ApprovalState{}, err
		}
	}
	if a := st.OpenApproval(d.Step); a != nil {
		// Without an open approval the validator says why the vote is
		// refused; there is nothing to prove.
		d.Step = a.Step
		if err := workflows.SignDecision(s.Keys, incident, a, &d); err != nil {
			return s.refused(log, fmt.Errorf("incident %s: %w", incident, err))
		}
	}
	h, err := s.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   incident,
		UpdateName:   workflows.UpdateDecide,
		Args:         []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var res workflows.ApprovalState
	if err == nil {
		err = h.Get(ctx, &res)
	}
	if err != nil {
		return s.refused(log, s.explain(incident, err))
	}
	log.Info().Str("outcome", res.Outcome).Msg("vote recorded")
	return res, nil
}

// Stop closes the incident, or releases it when r.Release: serve proves
// the request for the incident's current occurrence and sends it as the
// stop Update. Incidents started before they took that Update get the
// close or release signal instead. A refusal is a *Refused.
func (s *Service) Stop(ctx context.Context, incident string, r workflows.StopRequest) (*workflows.IncidentState, error) {
	log := s.Log.With().Str("incident_id", incident).Str("by", r.By).Bool("release", r.Release).Logger()
	st, err := s.state(ctx, incident)
	if err == nil && st.Status == workflows.StatusClosed {
		err = &Refused{Reason: fmt.Sprintf("incident %s is closed (%s)", incident, st.CloseReason)}
	}
	if err != nil {
		_, err = s.refused(log, err)
		return nil, err
	}
	r.OpenedAt = st.OpenedAt
	if err := workflows.SignStop(s.Keys, incident, &r); err != nil {
		_, err = s.refused(log, fmt.Errorf("incident %s: %w", incident, err))
		return nil, err
	}
	h, err := s.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   incident,
		UpdateName:   workflows.UpdateStop,
		Args:         []any{r},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err != nil && strings.Contains(err.Error(), "unknown update") {
		// An incident from before the stop Update.
		name := workflows.SignalClose
		if r.Release {
			name = workflows.SignalRelease
		}
		err = s.Temporal.SignalWorkflow(ctx, incident, "", name, r.Reason+" (by "+r.By+")")
	}
	if err != nil {
		_, err = s.refused(log, s.explain(incident, err))
		return nil, err
	}
	log.Info().Str("reason", r.Reason).Msg("stop requested")
	return st, nil
}

// Approvals returns the incident's approvals (and its ID, status, close
// reason and opening time), small however large its alerts were.
func (s *Service) Approvals(ctx context.Context, incident string) (*workflows.IncidentState, error) {
	return s.state(ctx, incident)
}

// refused logs a refusal (or a failure) and returns it.
func (s *Service) refused(log zerolog.Logger, err error) (workflows.ApprovalState, error) {
	var r *Refused
	if errors.As(err, &r) {
		log.Warn().Str("reason", r.Reason).Msg("vote refused")
	} else {
		log.Error().Err(err).Msg("vote failed")
	}
	return workflows.ApprovalState{}, err
}

// state asks the incident for its approvals (workflows.QueryApprovals),
// whose answer stays small however large the incident's alerts were; an
// incident from before that query answers with its whole state.
func (s *Service) state(ctx context.Context, incident string) (*workflows.IncidentState, error) {
	v, err := s.Temporal.QueryWorkflow(ctx, incident, "", workflows.QueryApprovals)
	if err != nil && strings.Contains(err.Error(), "unknown queryType") {
		v, err = s.Temporal.QueryWorkflow(ctx, incident, "", workflows.QueryState)
	}
	if err != nil {
		return nil, s.explain(incident, err)
	}
	var st workflows.IncidentState
	if err := v.Get(&st); err != nil {
		return nil, fmt.Errorf("incident %s: read state: %w", incident, err)
	}
	return &st, nil
}

// explain turns Temporal's answer into what the voter should read: the
// validator's reason, or that there is no such incident.
func (s *Service) explain(incident string, err error) error {
	var appErr *temporal.ApplicationError
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &appErr):
		return &Refused{Reason: appErr.Message()}
	case errors.As(err, &notFound):
		return &Refused{Reason: fmt.Sprintf("incident %s does not exist or is closed", incident)}
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("incident %s: Temporal did not answer in time: %w", incident, err)
	}
	return fmt.Errorf("incident %s: %w", incident, err)
}

// describeSlackVoter adds to d the user groups among the approvers that the
// voter belongs to and, when the approval names a requester, the voter's
// handle and e-mail so that the validator can tell them apart.
func (s *Service) describeSlackVoter(ctx context.Context, st *workflows.IncidentState, d *workflows.Decision) error {
	a := st.OpenApproval(d.Step)
	if a == nil {
		return nil // the validator says why
	}
	for _, g := range a.Approvers {
		if !playbooks.IsUserGroup(g) {
			continue
		}
		members, err := s.Slack.GroupMembers(ctx, g)
		if err != nil {
			return fmt.Errorf("look up the members of user group %s: %w", g, err)
		}
		if slices.Contains(members, d.User) {
			d.Groups = append(d.Groups, g)
		}
	}
	if a.Requester != "" {
		u, err := s.Slack.User(ctx, d.User)
		if err != nil {
			// Without the profile the requester cannot be ruled out.
			return &Refused{Reason: fmt.Sprintf("could not read your Slack profile to check that you are not the requester: %v", err)}
		}
		d.Name, d.Email = u.Name, u.Email
	}
	return nil
}

// SlackUserByEmail returns the Slack user whose e-mail is email, so that a
// person who signs in elsewhere (the console) counts once with their Slack
// votes; "" when Slack is not configured or has no such member. Any other
// failure is an error: the caller refuses the vote rather than let one
// person count twice.
func (s *Service) SlackUserByEmail(ctx context.Context, email string) (string, error) {
	if s.Slack == nil {
		return "", nil
	}
	u, err := s.Slack.UserByEmail(ctx, email)
	var serr *slack.Error
	switch {
	case errors.As(err, &serr) && serr.Code == "users_not_found":
		return "", nil
	case err != nil:
		return "", fmt.Errorf("could not ask Slack who %s is there, to count your Slack and console votes once (soar's Slack app needs users:read.email): %w", email, err)
	}
	return u.ID, nil
}

// Confirmation is what a voter is told after a recorded vote.
func Confirmation(incident string, d workflows.Decision, a workflows.ApprovalState) string {
	verb := "denial"
	if d.Approve {
		verb = "approval"
	}
	state := fmt.Sprintf("%d of %d approvals so far", a.Approved(), a.Quorum)
	if a.Outcome != "" {
		state = "the step is " + a.Outcome
	}
	return fmt.Sprintf("Your %s of step %s (incident %s) is recorded: %s.", verb, a.Step, incident, state)
}

// SlackDecider answers Slack button clicks.
type SlackDecider struct{ Service *Service }

// Decide records a click as a vote.
func (sd SlackDecider) Decide(ctx context.Context, c slack.Click) (string, error) {
	d := workflows.Decision{
		Step: c.Step, User: c.User, Name: c.UserName, Team: c.Team, Approve: c.Approve,
		Source: workflows.SourceSlack, PlanHash: c.PlanHash, Person: c.User,
	}
	a, err := sd.Service.Vote(ctx, c.Incident, d)
	if err != nil {
		return "", err
	}
	return Confirmation(c.Incident, d, a), nil
}
