package app

import (
	"errors"
	"fmt"

	"github.com/soar-dev/soar/internal/proof"
)

// EnvSigningKeys holds the keys that prove what soar's processes send each
// other through Temporal (internal/proof): one or more keys of at least 32
// bytes, separated by commas or newlines; the first signs, all verify.
// worker, dispatch and serve need the same keys.
const EnvSigningKeys = "SOAR_SIGNING_KEYS"

// SigningKeys reads the signing keys from the environment. Without them a
// process refuses to start: a soar whose worker took unproven requests would
// obey anyone who can reach Temporal.
func SigningKeys() (*proof.Keys, error) {
	raw, err := Secret(EnvSigningKeys)
	if err != nil {
		return nil, err
	}
	if raw == "" {
		return nil, fmt.Errorf("%s (or %s_FILE) is not set: worker, dispatch and serve prove to each other what they send through Temporal with it, so that nobody else who reaches Temporal can vote, start or release an incident. Make one with 'head -c 32 /dev/urandom | base64' and give the same keys to all three (deploy/README.md)", EnvSigningKeys, EnvSigningKeys)
	}
	k, err := proof.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvSigningKeys, err)
	}
	return k, nil
}

// errNoKeys is returned by the Start functions when their keys are missing.
var errNoKeys = errors.New("no signing keys: see SigningKeys")
