"""Test helpers shared by the test modules: tiny ONNX models and a real uvicorn server process."""
