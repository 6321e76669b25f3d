// Package storetest is the conformance suite that every store.Store backend
// runs, in the manner of Dex's storage/conformance:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunTests(t, storetest.Factory{New: newStore, Reopen: reopen})
//	}
//
// It checks every method of store.Store through the interface only, with a
// fixed clock (all times are passed in), so a PostgreSQL backend runs it
// unchanged. Run it under -race: several subtests hammer one store from
// many goroutines.
//
// Times in the suite are whole seconds in UTC, so backends that keep
// microseconds (PostgreSQL) round-trip them exactly; values are compared
// after normalising times to UTC and empty maps and slices to nil.
//
// Two behaviours are pinned here beyond the words of the Store contract:
//   - PutRecord has no "now" argument, so a backend judges whether an
//     existing record is live at its own wall clock; the suite uses expiries
//     far in the past (2001) or future (2200) for PutRecord.
//   - ClaimDueDeliveries moves a claimed delivery's NextAttemptAt to the end
//     of its lease, so NextDueAt reports when a leased delivery can be
//     claimed again rather than a time already past (which would make a
//     delivery worker spin).
package storetest
