package activities

import (
	"reflect"
	"testing"

	"github.com/soar-dev/soar/activities/contract"
)

// TestContractNamesTheActivitiesMethods keeps the names workflows schedule
// activities by equal to the methods the worker registers (RegisterActivity
// names each after its method).
func TestContractNamesTheActivitiesMethods(t *testing.T) {
	for _, name := range []string{
		contract.SlackThreadActivity, contract.SlackApprovalActivity, contract.SlackNoteActivity,
		contract.TicketUpdateActivity, contract.QuarantineActivity,
	} {
		if _, ok := reflect.TypeFor[*Activities]().MethodByName(name); !ok {
			t.Errorf("contract names activity %s, which is no method of *Activities", name)
		}
	}
}
