print("sample-b")
