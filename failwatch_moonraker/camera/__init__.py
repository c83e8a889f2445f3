"""The camera side: finding the webcam, fetching and turning snapshots, drawing boxes."""
