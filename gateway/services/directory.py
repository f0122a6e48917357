"""DirectoryService: the agencies on the network."""

from __future__ import annotations

import json
from typing import Any

from gateway.context import Call
from gateway.directory import Directory
from gateway.identity import ADMIN, AGENCY, AUDITOR
from gateway.models import Agency
from gateway.replication import Replicas
from gateway.rpc import Gateway, rpc
from gateway.v1 import directory_pb2, directory_pb2_grpc
from govshare import times
from govshare.names import AgencyName

EVERYONE = (AGENCY, ADMIN, AUDITOR)


def agency_proto(row: Agency) -> directory_pb2.Agency:
    return directory_pb2.Agency(
        name=str(AgencyName(row.id)),
        display_name=row.display_name,
        region_code=row.region_code,
        signing_certificate_pem=row.signing_certificate_pem,
        signing_key_id=row.signing_key_id,
        state=directory_pb2.AgencyState.Value(f"AGENCY_STATE_{row.state}"),
        suspend_reason=row.suspend_reason,
        create_time=times.to_timestamp(row.create_time),
        update_time=times.to_timestamp(row.update_time),
        previous_signing_certificates=[
            directory_pb2.RetiredSigningCertificate(
                certificate_pem=retired["certificate_pem"], key_id=retired["key_id"],
                retire_time=times.to_timestamp(retired["retire_time"]))
            for retired in json.loads(row.previous_signing_certificates)],
        network_member=row.network_member,
    )


class DirectoryService(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self, gateway: Gateway, directory: Directory, replicas: Replicas):
        self.gateway = gateway
        self._directory = directory
        self._replicas = replicas

    @rpc("directory.get", allow=EVERYONE)
    def GetAgency(self, request: directory_pb2.GetAgencyRequest, call: Call) -> Any:
        row = self._directory.get(request.name)
        return directory_pb2.GetAgencyResponse(agency=agency_proto(row))

    @rpc("directory.list", allow=EVERYONE)
    def ListAgencies(self, request: directory_pb2.ListAgenciesRequest, call: Call) -> Any:
        page = self._directory.list_agencies(call, request)
        return directory_pb2.ListAgenciesResponse(agencies=map(agency_proto, page.items),
                                                  next_page_token=page.next_page_token,
                                                  stale_members=self._replicas.stale_members())

    @rpc("directory.register", allow=(ADMIN,))
    def RegisterAgency(self, request: directory_pb2.RegisterAgencyRequest, call: Call) -> Any:
        agency = request.agency
        row = self._directory.register(
            call, request.agency_id, agency.display_name, agency.region_code,
            agency.signing_certificate_pem,
        )
        return directory_pb2.RegisterAgencyResponse(agency=agency_proto(row))

    @rpc("directory.suspend", allow=(ADMIN,))
    def SuspendAgency(self, request: directory_pb2.SuspendAgencyRequest, call: Call) -> Any:
        row = self._directory.suspend(call, request.name, request.reason)
        return directory_pb2.SuspendAgencyResponse(agency=agency_proto(row))

    @rpc("directory.reinstate", allow=(ADMIN,))
    def ReinstateAgency(self, request: directory_pb2.ReinstateAgencyRequest, call: Call) -> Any:
        row = self._directory.reinstate(call, request.name, request.reason)
        return directory_pb2.ReinstateAgencyResponse(agency=agency_proto(row))

    @rpc("directory.signing_certificate.replace", allow=(ADMIN,))
    def ReplaceSigningCertificate(self, request: directory_pb2.ReplaceSigningCertificateRequest,
                                  call: Call) -> Any:
        row = self._directory.replace_signing_certificate(
            call, request.name, request.signing_certificate_pem, request.reason)
        return directory_pb2.ReplaceSigningCertificateResponse(agency=agency_proto(row))
