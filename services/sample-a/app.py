print("sample-a")
