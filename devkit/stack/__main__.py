"""`python -m devkit.stack`: provision template.yaml's resources against AWS_ENDPOINT_URL and print the result."""

import json

from devkit.stack import provision

stack = provision()
print(json.dumps({key: value for key, value in vars(stack).items() if key != "template"}, indent=2))
