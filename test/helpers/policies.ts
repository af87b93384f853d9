/** Policies the tests share: the README's first example, web servers taking HTTP from clients only. */
export const WEB_FROM_CLIENT = `
kind: NetworkPolicy
name: web-from-client
selector: role == 'web'
ingress:
  - action: allow
    protocol: tcp
    from: role == 'client'
    ports: [80]
`;
