"""The IAM as an OpenID Provider for applications (contract section 10), being built (issue 15).

- `keys.py`: the RS256 and ES256 keys tokens are signed with (generated, sealed, rotated, the JWKS);
- `server.py`: Authlib's authorization server at the server's root (`/oauth2/...`): the token
  endpoint with client credentials, whose tokens act as the client's service account on this API.

Built so far: keys and `GET /oauth2/jwks`, `POST /oauth2/token` (client_credentials). The
authorization code flow, its pages, userinfo, introspection, revocation, logout and discovery
come next.
"""
