package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/soar-dev/soar/internal/proof"
)

// provenVersion guards a change of behaviour: an incident checks the proofs
// its start and its alerts carry, takes a close or a release only as a
// proven UpdateStop, and refuses the close and release signals. Anyone who
// can reach Temporal can start a workflow, signal it or send it an Update;
// only soar's processes hold the keys that make proofs (internal/proof).
const provenVersion = "proven-requests"

// UpdateStop closes or releases an incident: what serve sends for 'soar
// incident close' and 'soar incident release' and the API's close and
// release. Its validator refuses a request without a proof from serve, or
// one made for another occurrence of the incident.
const UpdateStop = "stop"

// StartSkew is how far a start's SignedAt may lie from the time Temporal
// started the workflow: more means a signed start was kept and replayed.
const StartSkew = 10 * time.Minute

// StopRequest asks an incident to close, or to release and close.
type StopRequest struct {
	Release bool   `json:"release,omitempty"`
	Reason  string `json:"reason"`
	// By is who asked, as serve authenticated them (api:<token name>).
	By string `json:"by"`
	// OpenedAt names the occurrence of the incident the request is for:
	// its IncidentState.OpenedAt.
	OpenedAt time.Time `json:"openedAt"`
	Proof    string    `json:"proof,omitempty"`
}

// Responder runs Respond with the keys that check proofs. A worker
// registers its Respond under RespondName.
type Responder struct {
	// Keys verify the proofs of starts, alerts, votes and stop requests,
	// and sign a continue-as-new. Without keys nothing is checked: for
	// tests of workflow logic only; soar's processes refuse to run without.
	Keys *proof.Keys
}

// Respond is the incident workflow (see the package-level Respond).
func (r Responder) Respond(ctx workflow.Context, in RespondInput) (*IncidentState, error) {
	return respond(ctx, in, r.Keys)
}

// guard holds what an incident checks proofs with. strict is recorded in
// history (see checkStart): a run that started strict stays strict on
// every worker and in every replay.
type guard struct {
	keys   *proof.Keys
	strict bool
}

// isStrict reports whether the incident checks proofs.
func (g *guard) isStrict() bool { return g != nil && g.strict }

// startVerdict is the recorded outcome of checking a start.
type startVerdict struct {
	Strict  bool   `json:"strict,omitempty"`
	Refused string `json:"refused,omitempty"`
}

// checkStart checks, once and recorded as a side effect, the proof of the
// incident's input. It returns nil for runs that predate provenVersion.
func checkStart(ctx workflow.Context, in RespondInput, keys *proof.Keys) (*guard, string) {
	if changeVersion(ctx, provenVersion) < 1 {
		return nil, ""
	}
	info := workflow.GetInfo(ctx)
	var v startVerdict
	err := workflow.SideEffect(ctx, func(workflow.Context) any {
		if keys == nil {
			return startVerdict{}
		}
		return startVerdict{Strict: true, Refused: refusedStart(keys, info.WorkflowExecution.ID, info.WorkflowStartTime, in)}
	}).Get(&v)
	if err != nil {
		return nil, fmt.Sprintf("reading the proof check: %v", err)
	}
	return &guard{keys: keys, strict: v.Strict}, v.Refused
}

// refusedStart says why a start is not soar's; "" when it is.
func refusedStart(keys *proof.Keys, wid string, started time.Time, in RespondInput) string {
	if in.IncidentID != wid {
		return fmt.Sprintf("the input names incident %q, not this workflow", in.IncidentID)
	}
	p := in.Proof
	in.Proof = ""
	in.Baseline = 0 // not signed (SignStart)
	if err := proof.Verify(keys, proof.Start, wid, in, p); err != nil {
		return "the start carries " + err.Error()
	}
	if d := started.Sub(in.SignedAt); d > StartSkew || d < -StartSkew {
		return fmt.Sprintf("the start was signed at %s, %s from when it started: a replayed start", in.SignedAt.UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	return ""
}

// seal sets *field to the proof of *v, signed with *field empty.
func seal[T any](keys *proof.Keys, purpose, subject string, v *T, field *string) error {
	*field = ""
	p, err := proof.Sign(keys, purpose, subject, *v)
	*field = p
	return err
}

// SignStart sets in's SignedAt and Proof, for the dispatcher.
//
// The proof leaves in.Baseline out. A worker that predates baselines drops
// the field when it decodes the input, and would refuse every start that
// signed it: the incident would close without acting. The baseline changes
// nothing an incident does (see Baseline), so a forged one gains nothing.
func SignStart(keys *proof.Keys, in *RespondInput, now time.Time) error {
	in.SignedAt = now
	baseline := in.Baseline
	in.Baseline = 0
	err := seal(keys, proof.Start, in.IncidentID, in, &in.Proof)
	in.Baseline = baseline
	return err
}

// SignAlert sets sig's Proof for incident, for the dispatcher.
func SignAlert(keys *proof.Keys, incident string, sig *AlertSignal) error {
	return seal(keys, proof.Alert, incident, sig, &sig.Proof)
}

// decisionSubject binds a vote to one approval: the incident, the step and
// when that approval opened, so that a vote recorded on one occurrence's
// approval cannot be sent again to another.
func decisionSubject(incident, step string, opened time.Time) string {
	return incident + "/" + step + "/" + opened.UTC().Format(time.RFC3339Nano)
}

// SignDecision sets d's Proof for the approval a of incident, for serve.
// d.Step must name a's step.
func SignDecision(keys *proof.Keys, incident string, a *ApprovalState, d *Decision) error {
	return seal(keys, proof.Decision, decisionSubject(incident, a.Step, a.OpenedAt), d, &d.Proof)
}

// SignStop sets r's Proof for incident, for serve.
func SignStop(keys *proof.Keys, incident string, r *StopRequest) error {
	return seal(keys, proof.Control, incident, r, &r.Proof)
}

// verifyDecision is the proof part of the decide validator. Validators do
// not run in replay, so it applies to every run on a worker with keys.
func verifyDecision(keys *proof.Keys, incident string, a *ApprovalState, d Decision) error {
	if keys == nil {
		return nil
	}
	p := d.Proof
	d.Proof = ""
	if err := proof.Verify(keys, proof.Decision, decisionSubject(incident, a.Step, a.OpenedAt), d, p); err != nil {
		return fmt.Errorf("the vote is refused: it carries %w; votes are cast through soar (Slack, 'soar approve', the API), which proves who cast them", err)
	}
	return nil
}

// validateStop is UpdateStop's validator.
func (st *IncidentState) validateStop(keys *proof.Keys, r StopRequest) error {
	if st.Status == StatusClosed {
		return errors.New("the incident is closed")
	}
	if keys != nil {
		p := r.Proof
		r.Proof = ""
		// Validators never run in replay; the JSON encoding is
		// deterministic anyway (encoding/json sorts map keys).
		err := proof.Verify(keys, proof.Control, st.IncidentID, r, p) //workflowcheck:ignore
		if err != nil {
			return fmt.Errorf("the request is refused: it carries %w; close and release through soar ('soar incident', the API)", err)
		}
	}
	if !r.OpenedAt.Equal(st.OpenedAt) {
		return fmt.Errorf("the request is for the occurrence opened at %s; this one opened at %s", r.OpenedAt.UTC().Format(time.RFC3339), st.OpenedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// admit checks the proof of an alert signal on a strict incident. A refused
// signal is counted and logged, never added. The check is a side effect:
// its outcome is recorded, so a replay on a worker whose keys rotated
// since decides the same.
func (g *guard) admit(ctx workflow.Context, st *IncidentState, sig AlertSignal) bool {
	if !g.isStrict() {
		return true
	}
	keys, wid := g.keys, st.IncidentID
	var refused string
	err := workflow.SideEffect(ctx, func(workflow.Context) any {
		p := sig.Proof
		sig.Proof = ""
		if err := proof.Verify(keys, proof.Alert, wid, sig, p); err != nil {
			return "the alert carries " + err.Error()
		}
		return ""
	}).Get(&refused)
	if err != nil {
		refused = err.Error()
	}
	if refused == "" {
		return true
	}
	st.refuse(ctx, "alert signal", refused)
	return false
}

// refuse counts and logs a request the incident did not take.
func (st *IncidentState) refuse(ctx workflow.Context, what, why string) {
	st.Refused++
	workflow.GetLogger(ctx).Warn("refused a request without soar's proof", "incident_id", st.IncidentID, "request", what, "reason", why, "refused", st.Refused)
}

// signContinued signs the input of a continue-as-new, as a side effect so
// that a replay reuses the proof.
func (g *guard) signContinued(ctx workflow.Context, in *RespondInput) error {
	if !g.isStrict() {
		return nil
	}
	keys := g.keys
	now := workflow.Now(ctx)
	var signed struct {
		Proof string `json:"proof"`
		Err   string `json:"err,omitempty"`
	}
	err := workflow.SideEffect(ctx, func(workflow.Context) any {
		c := *in
		if err := SignStart(keys, &c, now); err != nil {
			signed.Err = err.Error()
		}
		signed.Proof = c.Proof
		return signed
	}).Get(&signed)
	if err != nil {
		return err
	}
	if signed.Err != "" {
		return errors.New("sign the continued input: " + signed.Err)
	}
	in.SignedAt, in.Proof = now, signed.Proof
	return nil
}
