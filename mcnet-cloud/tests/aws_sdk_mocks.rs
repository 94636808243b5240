//! What moto cannot show, against **SDK-level mocks** (aws-smithy-mocks:
//! canned EC2 responses served inside the SDK client, no server at all).
//! Moto accepts a peering at once and accepts overlapping CIDRs; real AWS
//! moves a peering through pending-acceptance and provisioning, fails an
//! overlapping one at once, and takes the accept in the accepter's region.
//! These tests pin the provider's handling of each.

use std::collections::BTreeMap;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::operation::accept_vpc_peering_connection::AcceptVpcPeeringConnectionOutput;
use aws_sdk_ec2::operation::create_vpc_peering_connection::CreateVpcPeeringConnectionOutput;
use aws_sdk_ec2::operation::describe_vpc_peering_connections::DescribeVpcPeeringConnectionsOutput;
use aws_sdk_ec2::types::{
    Tag, VpcPeeringConnection, VpcPeeringConnectionStateReason,
    VpcPeeringConnectionStateReasonCode as Code, VpcPeeringConnectionVpcInfo,
};
use aws_sdk_ec2::Client;
use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule, RuleMode};
use mcnet_cloud::connect::aws::AwsProvider;
use mcnet_core::reconcile::{
    Desired, ErrorKind, Observed, Owner, Refs, ResourceId, ResourceProvider, ResourceState, Scope,
    Spec,
};

fn mocked(region: &str, rules: &[&Rule]) -> Client {
    let mut i = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for r in rules {
        i = i.with_rule(r);
    }
    Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(Credentials::new("mock", "mock", None, None, "mock"))
            .http_client(create_mock_http_client())
            .interceptor(i)
            .build(),
    )
}

fn owner() -> Owner {
    Owner {
        topology: "t".into(),
    }
}

fn vpc(id: &str, cloud_id: &str, region: &str) -> Observed {
    Observed {
        id: id.parse().unwrap(),
        cloud_id: cloud_id.into(),
        scope: Scope::Aws,
        spec: Spec::Network {
            region: region.into(),
            cidrs: vec!["10.0.0.0/16".into()],
        },
        state: ResourceState::Ready,
        outputs: BTreeMap::from([("region".into(), region.into())]),
        links: vec![],
    }
}

fn known(peer_region: &str) -> BTreeMap<String, Observed> {
    BTreeMap::from([
        ("network/a".into(), vpc("network/a", "vpc-a", "us-east-1")),
        ("network/b".into(), vpc("network/b", "vpc-b", peer_region)),
    ])
}

fn peering(peer_region: Option<&str>) -> Desired {
    Desired {
        id: ResourceId::peering("ab"),
        scope: Scope::Aws,
        spec: Spec::Peering {
            requester: "network/a".into(),
            accepter: "network/b".into(),
            peer_region: peer_region.map(str::to_string),
        },
    }
}

/// The peering as AWS describes it, in state `code`.
fn described(code: Code, message: Option<&str>) -> VpcPeeringConnection {
    let mut reason = VpcPeeringConnectionStateReason::builder().code(code);
    if let Some(m) = message {
        reason = reason.message(m);
    }
    let info = |v: &str| {
        VpcPeeringConnectionVpcInfo::builder()
            .vpc_id(v)
            .region("us-east-1")
            .build()
    };
    let mut b = VpcPeeringConnection::builder()
        .vpc_peering_connection_id("pcx-1")
        .status(reason.build())
        .requester_vpc_info(info("vpc-a"))
        .accepter_vpc_info(info("vpc-b"));
    for (k, v) in owner().tags(&ResourceId::peering("ab")) {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.build()
}

#[tokio::test]
async fn a_peering_waits_through_pending_acceptance_and_provisioning() {
    let create = mock!(Client::create_vpc_peering_connection).then_output(|| {
        CreateVpcPeeringConnectionOutput::builder()
            .vpc_peering_connection(described(Code::PendingAcceptance, None))
            .build()
    });
    let accept = mock!(Client::accept_vpc_peering_connection)
        .match_requests(|r| r.vpc_peering_connection_id() == Some("pcx-1"))
        .then_output(|| {
            AcceptVpcPeeringConnectionOutput::builder()
                .vpc_peering_connection(described(Code::Provisioning, None))
                .build()
        });
    let describe = mock!(Client::describe_vpc_peering_connections)
        .sequence()
        .output(|| {
            DescribeVpcPeeringConnectionsOutput::builder()
                .vpc_peering_connections(described(Code::Provisioning, None))
                .build()
        })
        .output(|| {
            DescribeVpcPeeringConnectionsOutput::builder()
                .vpc_peering_connections(described(Code::Active, None))
                .build()
        })
        .repeatedly()
        .build();
    let aws = AwsProvider::new(vec!["us-east-1".into()], None)
        .await
        .with_ec2_client(
            "us-east-1",
            mocked("us-east-1", &[&create, &accept, &describe]),
        );

    let k = known("us-east-1");
    let o = aws
        .create(&owner(), &peering(None), Refs::new(Scope::Aws, &k))
        .await
        .unwrap();
    assert_eq!(o.cloud_id, "pcx-1");
    assert!(matches!(o.state, ResourceState::Pending(_)), "{o:?}");
    assert_eq!(
        accept.num_calls(),
        1,
        "the requester accepts its own peering"
    );

    let first = aws.refresh(&o).await.unwrap().expect("still there");
    assert_eq!(first.state, ResourceState::Pending("provisioning".into()));
    let second = aws.refresh(&o).await.unwrap().expect("still there");
    assert_eq!(second.state, ResourceState::Ready);
    assert_eq!(second.outputs["status"], "active");
}

#[tokio::test]
async fn an_overlapping_peering_fails_at_once_with_aws_reason_and_is_not_accepted() {
    let create = mock!(Client::create_vpc_peering_connection).then_output(|| {
        CreateVpcPeeringConnectionOutput::builder()
            .vpc_peering_connection(described(
                Code::Failed,
                Some("Overlapping CIDR blocks: 10.0.0.0/16"),
            ))
            .build()
    });
    let accept = mock!(Client::accept_vpc_peering_connection)
        .then_output(|| AcceptVpcPeeringConnectionOutput::builder().build());
    let aws = AwsProvider::new(vec!["us-east-1".into()], None)
        .await
        .with_ec2_client("us-east-1", mocked("us-east-1", &[&create, &accept]));
    let k = known("us-east-1");
    let e = aws
        .create(&owner(), &peering(None), Refs::new(Scope::Aws, &k))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
    assert!(e.message.contains("peering/ab"), "{e}");
    assert!(e.message.contains("Overlapping CIDR blocks"), "{e}");
    assert_eq!(accept.num_calls(), 0);
}

#[tokio::test]
async fn a_cross_region_peering_is_accepted_in_the_accepters_region() {
    let create = mock!(Client::create_vpc_peering_connection)
        .match_requests(|r| r.peer_region() == Some("eu-west-1"))
        .then_output(|| {
            CreateVpcPeeringConnectionOutput::builder()
                .vpc_peering_connection(described(Code::InitiatingRequest, None))
                .build()
        });
    let accept_home = mock!(Client::accept_vpc_peering_connection)
        .then_output(|| AcceptVpcPeeringConnectionOutput::builder().build());
    let accept_peer = mock!(Client::accept_vpc_peering_connection).then_output(|| {
        AcceptVpcPeeringConnectionOutput::builder()
            .vpc_peering_connection(described(Code::Provisioning, None))
            .build()
    });
    let aws = AwsProvider::new(vec!["us-east-1".into(), "eu-west-1".into()], None)
        .await
        .with_ec2_client("us-east-1", mocked("us-east-1", &[&create, &accept_home]))
        .with_ec2_client("eu-west-1", mocked("eu-west-1", &[&accept_peer]));
    let k = known("eu-west-1");
    aws.create(
        &owner(),
        &peering(Some("eu-west-1")),
        Refs::new(Scope::Aws, &k),
    )
    .await
    .unwrap();
    assert_eq!(create.num_calls(), 1);
    assert_eq!(accept_peer.num_calls(), 1);
    assert_eq!(accept_home.num_calls(), 0);
}
