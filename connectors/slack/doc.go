// Package slack is soar's Slack connector: it posts an incident's thread and
// its approval requests, turns approval button clicks into votes, and tells the
// clicker what became of the vote.
//
// The pieces are independent so that each can be tested and replaced alone:
//
//   - Client wraps the Web API (chat.postMessage, chat.update,
//     chat.postEphemeral, conversations.history and .replies,
//     usergroups.users.list, users.info, auth.test).
//     Every failure is an *Error saying whether retrying can help and, when it
//     cannot, what the operator must fix. The client never retries by itself:
//     Temporal retries activities and honours Error.RetryAfter.
//   - ApprovalMessage, IncidentMessage, TextMessage and NoteMessage render
//     Block Kit messages. Alert content is untrusted, so every alert-derived
//     string goes through Escape and cannot mention @channel, a user or a
//     link; only soar's own Mention and Date produce Slack's <...> syntax.
//   - Signer signs button values, so a vote names exactly the incident, step
//     and plan that the approver saw.
//   - Interactions receives clicks over HTTP (ServeHTTP, verifying Slack's
//     request signature) or Socket Mode (RunSocketMode), and hands each vote
//     to a Decider in the background so Slack's 3-second deadline always holds.
package slack
