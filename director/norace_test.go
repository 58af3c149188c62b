//go:build !race

package director_test

const raceDetector = false
