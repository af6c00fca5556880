//! Callers with chosen rights: a ServiceAccount, a Role and its binding, and a token.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::{Error, Result};

/// The ServiceAccount `name` in `ns`, bound to a Role `name` that allows `verbs` on
/// `resource` of API group `group` (no Role at all when `verbs` is empty), and a token
/// for it from the TokenRequest API, valid for an hour.
pub async fn account_token(
    client: &Client,
    ns: &str,
    name: &str,
    (group, resource): (&str, &str),
    verbs: &[&str],
) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.to_owned());
    accounts.create(&PostParams::default(), &sa).await?;
    if !verbs.is_empty() {
        let mut role = Role::default();
        role.metadata.name = Some(name.to_owned());
        role.rules = Some(vec![PolicyRule {
            api_groups: Some(vec![group.to_owned()]),
            resources: Some(vec![resource.to_owned()]),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            ..PolicyRule::default()
        }]);
        Api::<Role>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &role)
            .await?;
        let mut binding = RoleBinding::default();
        binding.metadata.name = Some(name.to_owned());
        binding.role_ref = RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: name.to_owned(),
        };
        binding.subjects = Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: name.to_owned(),
            namespace: Some(ns.to_owned()),
            ..Subject::default()
        }]);
        Api::<RoleBinding>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &binding)
            .await?;
    }
    token(client, ns, name).await
}

/// A token for the existing ServiceAccount `name` in `ns`, from the TokenRequest API,
/// valid for an hour.
pub async fn token(client: &Client, ns: &str, name: &str) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let answer: TokenRequest = accounts
        .create_subresource("token", name, &PostParams::default(), &request)
        .await?;
    answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::NoToken {
            account: format!("{ns}/{name}"),
        })
}
