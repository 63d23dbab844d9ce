package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/playbooks"
)

// Playbooks is the playbook source a process runs (see playbooks.Source for
// loading, reloading and watching) with what soar's processes add to it: a
// readiness check and the playbook metrics.
type Playbooks struct {
	*playbooks.Source
}

// PlaybookWatch is a running watch on the playbooks; see Playbooks.Watch.
type PlaybookWatch = playbooks.Watcher

// LoadPlaybooks loads every playbook in dir, validated with
// PlaybookOptions. It fails, listing every problem with its file
// and line, when any playbook is invalid.
func LoadPlaybooks(dir string) (*Playbooks, error) {
	src, err := playbooks.NewSource(dir, PlaybookOptions())
	if err != nil {
		return nil, err
	}
	return &Playbooks{Source: src}, nil
}

// Watch watches the playbooks as playbooks.Source.Watch does, logging to
// log, and keeps m's playbook metrics up to date: each reload is counted in
// soar_playbook_reloads_total by result, and the gauges follow the status.
func (p *Playbooks) Watch(ctx context.Context, log zerolog.Logger, m *metrics.Metrics) (*PlaybookWatch, error) {
	reportPlaybooks(m, p.Status())
	return p.Source.Watch(ctx, log, func(st playbooks.ReloadStatus) {
		result := "success"
		if st.Err != nil {
			result = "failure"
		}
		m.PlaybookReloads.WithLabelValues(result).Inc()
		reportPlaybooks(m, st)
	})
}

// reportPlaybooks sets the gauges from the playbooks' status.
func reportPlaybooks(m *metrics.Metrics, st playbooks.ReloadStatus) {
	m.PlaybooksLoaded.Set(float64(st.Playbooks))
	m.PlaybooksLastReload.Set(float64(st.LoadedAt.UnixNano()) / 1e9)
	failing := 0.0
	if st.Err != nil {
		failing = 1
	}
	m.PlaybookReloadFailing.Set(failing)
}

// Check is a readiness check. A set is always loaded, and while the latest
// reload has failed the process still runs the previous set, so Check stays
// ready then and returns an *httpserver.Degraded saying when the reload
// failed and why.
func (p *Playbooks) Check(context.Context) error {
	if st := p.Status(); st.Err != nil {
		return &httpserver.Degraded{Detail: fmt.Sprintf("reload failed at %s; the playbooks loaded at %s stay in force: %s",
			st.FailedAt.UTC().Format(time.RFC3339), st.LoadedAt.UTC().Format(time.RFC3339),
			strings.Join(st.Problems(), "; "))}
	}
	return nil
}
