// Package tickets opens, comments on and resolves the ticket that soar keeps
// for an incident, in Jira (Cloud or Data Center), GitHub Issues or a generic
// signed webhook.
//
// Each incident has exactly one ticket. Every ticket carries
// IncidentLabel(incidentID) as a label (Jira, GitHub) or in its idempotency
// key (webhook), and Open looks for it with Provider.Find before it calls
// Provider.Create, so a retried ticket.open step finds the ticket that an
// earlier attempt created even when that attempt never saw the answer.
//
// Providers never retry and never sleep: a failed call returns an *Error at
// once, saying whether retrying can help (and after how long) or, when it
// cannot, what the operator has to fix. Temporal retries the activity. Errors
// never contain a token, a password or a webhook secret.
//
// Titles and bodies hold alert text, which an attacker can choose. Every
// provider renders it as plain text in its own markup: GitHub markdown with
// every special character escaped and mentions and issue references broken
// by a zero-width joiner, Jira wiki markup with every special character
// escaped, and Atlassian Document Format where the text only ever lands in
// text nodes. Only soar's own Link blocks produce links.
package tickets
