"""The supervisor's terminal dashboard: pure statistics, pure view, and a thin rich Live shell."""
