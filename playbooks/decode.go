package playbooks

import (
	"github.com/soar-dev/soar/internal/yamlfile"
)

// decoder turns one playbook file into a Playbook. The strict YAML decoding
// and the positions of problems come from yamlfile; the format is this
// package's.
type decoder struct {
	yamlfile.Decoder
	lines []string
	opts  LoadOptions
}
