"""CRAFT for SpeechBrain."""
