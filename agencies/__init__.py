"""govshare's Python SDK: the clients an agency system, an administrator or an auditor uses to
talk to a gateway over mutual TLS, verifying everything it receives.

    from agencies import AgencyClient, GovshareError

`agencies.sim` holds the simulated regional agencies of the demo and the tests; it uses the SDK
as any outside system would.
"""

from agencies import errors
from agencies.client import AdminClient, AgencyClient, AuditorClient, BaseClient
from agencies.errors import (
    CertificateRevoked,
    GatewayNotMember,
    GovshareError,
    NetworkConfigurationRefused,
    VerificationError,
)
from agencies.exchange import Fetched, FetchRecord
from agencies.listing import Listing

__all__ = ["AdminClient", "AgencyClient", "AuditorClient", "BaseClient", "CertificateRevoked",
           "FetchRecord", "Fetched", "GatewayNotMember", "GovshareError", "Listing",
           "NetworkConfigurationRefused", "VerificationError", "errors"]
