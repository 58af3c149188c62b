//go:build race

package director_test

// raceDetector is true under the race detector, which makes the long
// churn tests several times slower: they run fewer cycles.
const raceDetector = true
