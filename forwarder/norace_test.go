//go:build !race

package forwarder

const raceDetector = false
