package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Search attributes soar sets on every incident so that incidents can be found
// with the Temporal CLI and UI, e.g.
//
//	temporal workflow list --query "SoarStatus = 'open' AND SoarOutcome = 'contained' AND SoarNamespace = 'payments'"
var (
	SearchPlaybook        = temporal.NewSearchAttributeKeyKeyword("SoarPlaybook")
	SearchPlaybookVersion = temporal.NewSearchAttributeKeyKeyword("SoarPlaybookVersion")
	SearchSeverity        = temporal.NewSearchAttributeKeyKeyword("SoarSeverity")
	SearchNamespace       = temporal.NewSearchAttributeKeyKeyword("SoarNamespace")
	SearchPod             = temporal.NewSearchAttributeKeyKeyword("SoarPod")
	// SearchCluster is the incident's cluster (alert.Alert.Cluster), set at
	// start by the dispatcher; absent for a single-cluster incident.
	SearchCluster = temporal.NewSearchAttributeKeyKeyword("SoarCluster")
	// SearchStatus is the incident's lifecycle (Lifecycles); incidents
	// recorded before lifecycleVersion hold their detailed status there
	// (Split reads both).
	SearchStatus = temporal.NewSearchAttributeKeyKeyword("SoarStatus")
	// SearchOutcome is what the incident's steps achieved (Outcomes), once
	// they ran.
	SearchOutcome = temporal.NewSearchAttributeKeyKeyword("SoarOutcome")
	// SearchAlertCount and SearchLastAlert are the incident's alert count
	// and the time of its last alert, published at most every countsEvery
	// and at the close (countsVersion).
	SearchAlertCount = temporal.NewSearchAttributeKeyInt64("SoarAlertCount")
	SearchLastAlert  = temporal.NewSearchAttributeKeyTime("SoarLastAlert")
)

// SearchAttributes lists soar's custom search attributes and their types, for
// registration on a namespace.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	m := map[string]enumspb.IndexedValueType{}
	for _, k := range []temporal.SearchAttributeKeyKeyword{
		SearchPlaybook, SearchPlaybookVersion, SearchSeverity, SearchNamespace, SearchPod, SearchCluster, SearchStatus, SearchOutcome,
	} {
		m[k.GetName()] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	m[SearchAlertCount.GetName()] = enumspb.INDEXED_VALUE_TYPE_INT
	m[SearchLastAlert.GetName()] = enumspb.INDEXED_VALUE_TYPE_DATETIME
	return m
}
